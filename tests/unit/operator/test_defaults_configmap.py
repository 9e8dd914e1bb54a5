"""The defaults ConfigMap's data on top of the environment: its keys win, bad input is one line."""

from __future__ import annotations

import pytest

from jobqueue_operator.settings import SCALING_KEYS, OperatorSettings


def test_configmap_values_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_WORKERS", "30")
    monkeypatch.setenv("MIN_WORKERS", "2")
    merged = OperatorSettings().with_defaults_from({"MAX_WORKERS": "60"})
    assert merged.max_workers == 60  # the ConfigMap
    assert merged.min_workers == 2  # the environment, for a key the ConfigMap leaves out
    assert merged.scaling_defaults().max_workers == 60


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"MAX_WORKER": "5"}, "unknown key 'MAX_WORKER'"),
        ({"MAX_WORKERS": "ten"}, "MAX_WORKERS='ten': Input should be a valid integer"),
        ({"SCALE_UP_QUEUE_LATENCY": "0"}, "SCALE_UP_QUEUE_LATENCY='0': Input should be greater"),
        ({"SCALE_UP_CPU_THRESHOLD": "2000"}, "SCALE_UP_CPU_THRESHOLD='2000'"),
    ],
)  # fmt: skip
def test_a_bad_configmap_is_one_line_naming_the_key(data: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the message is checked below
        OperatorSettings().with_defaults_from(data)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_every_key_is_an_environment_name_of_a_settings_field() -> None:
    fields = OperatorSettings.model_fields
    for key, field in SCALING_KEYS.items():
        assert field in fields, key
        assert key in str(fields[field].validation_alias), key
