"""The KEDA trigger metadata: what is accepted, and the one-line refusals."""

from __future__ import annotations

import pytest

from jobqueue_operator.kedascaler.metadata import BadMetadataError, Mode, parse


def test_backlog_is_the_default_mode_with_one_job_per_replica() -> None:
    trigger = parse({"queue": "emails", "scalerAddress": "scaler:9090"})
    assert trigger.mode is Mode.BACKLOG
    assert trigger.queues == ("emails",)
    assert (trigger.target, trigger.activation) == (1.0, 0.0)
    assert trigger.policy is None
    assert trigger.metric_name == "jobqueue-backlog-emails"


def test_several_queues_are_summed_and_named_in_the_metric() -> None:
    trigger = parse({"queue": "a:jobs, B.jobs", "targetBacklogPerReplica": "2.5"})
    assert trigger.queues == ("a:jobs", "B.jobs")
    assert trigger.target == 2.5
    assert trigger.metric_name == "jobqueue-backlog-a-jobs-b-jobs"


def test_replicas_mode_resolves_the_policy_like_a_jobqueue() -> None:
    trigger = parse(
        {
            "queue": "q",
            "mode": "replicas",
            "maxReplicas": "7",
            "scaleUpQueueDepth": "4",
            "scaleDownQueueDepth": "1",
            "scaleDownCooldownSeconds": "0",
        }
    )
    assert trigger.mode is Mode.REPLICAS
    assert trigger.target == 1.0
    policy = trigger.policy
    assert policy is not None
    assert (policy.min_replicas, policy.max_replicas) == (0, 7)
    assert (policy.up_depth, policy.down_depth, policy.down_cooldown_s) == (4, 1, 0)


def test_metric_names_are_short_and_plain() -> None:
    name = parse({"queue": "x" * 200}).metric_name
    assert len(name) <= 60
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789-")


@pytest.mark.parametrize(
    ("metadata", "names"),
    [
        ({}, "metadata.queue is missing"),
        ({"queue": " , "}, "metadata.queue is missing"),
        ({"queue": "a,a"}, "twice"),
        ({"queue": "bad{name}"}, "metadata.queue"),
        ({"queue": "q", "mode": "magic"}, "metadata.mode 'magic'"),
        ({"queue": "q", "tagetBacklogPerReplica": "3"}, "metadata.tagetBacklogPerReplica"),
        ({"queue": "q", "targetBacklogPerReplica": "many"}, "is not a number"),
        ({"queue": "q", "targetBacklogPerReplica": "0"}, "must be above 0"),
        ({"queue": "q", "targetBacklogPerReplica": "nan"}, "not a finite number"),
        ({"queue": "q", "activationBacklog": "-1"}, "must not be negative"),
        ({"queue": "q", "maxReplicas": "5"}, "needs mode: replicas"),
        ({"queue": "q", "mode": "replicas", "activationBacklog": "1"}, "mode: backlog only"),
        ({"queue": "q", "mode": "replicas", "maxReplicas": "lots"}, "metadata.maxReplicas"),
        (
            {"queue": "q", "mode": "replicas", "minReplicas": "5", "maxReplicas": "2"},
            "minReplicas must not be greater than maxReplicas",
        ),
    ],
)
def test_bad_metadata_is_refused_in_one_line_naming_it(
    metadata: dict[str, str], names: str
) -> None:
    with pytest.raises(BadMetadataError) as caught:
        parse(metadata)
    message = str(caught.value)
    assert names in message
    assert "\n" not in message


def test_the_shipped_example_scaled_objects_parse() -> None:
    from pathlib import Path

    import yaml

    examples = sorted((Path(__file__).resolve().parents[3] / "manifests" / "keda").glob("scaled*"))
    assert examples
    for path in examples:
        doc = yaml.safe_load(path.read_text())
        [trigger] = doc["spec"]["triggers"]
        assert trigger["type"] == "external"
        parse(trigger["metadata"])
