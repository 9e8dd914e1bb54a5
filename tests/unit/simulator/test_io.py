"""Trace and spec files, the shipped references, the report maths and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from jobqueue_simulator import gen_traces, report
from jobqueue_simulator.cli import app
from jobqueue_simulator.spec_file import SpecError, load_spec, parse_spec
from jobqueue_simulator.traces import TraceError, load_trace, parse_trace

PACKAGE = Path(gen_traces.__file__).resolve().parent
REPO = Path(__file__).resolve().parents[3]

# ---------------------------------------------------------------- traces


@pytest.mark.parametrize(
    ("text", "arrivals"),
    [
        ("t_seconds,count\n0,2\n1.5,1\n", (0.0, 0.0, 1.5)),
        ("3\n1\n2\n", (1.0, 2.0, 3.0)),  # one arrival per line, unsorted
        ("# a comment\n\nt_seconds\n4,0\n5\n", (5.0,)),  # count 0 rows add nothing
        ("0, 1\n 2 ,2\n", (0.0, 2.0, 2.0)),  # spaces are fine
        ("", ()),
    ],
)
def test_trace_formats(text: str, arrivals: tuple[float, ...]) -> None:
    assert parse_trace(text).arrivals == arrivals


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,3\n", "expected"),
        ("abc\n", "not a number"),
        ("1,1.5\n", "not a number"),
        ("-1\n", ">= 0"),
        ("nan\n", ">= 0"),
        ("1,-2\n", "count"),
    ],
)
def test_bad_trace_rows_name_the_line(text: str, message: str) -> None:
    with pytest.raises(TraceError, match=rf"t:1: .*{message}"):
        parse_trace(text, name="t")


def test_trace_metadata_gives_the_mean_service_time() -> None:
    assert parse_trace("# mean_service_seconds=2.5\n1\n").mean_service_s == 2.5
    assert parse_trace("1\n").mean_service_s is None
    with pytest.raises(TraceError, match="positive"):
        _ = parse_trace("# mean_service_seconds=0\n1\n").mean_service_s


@pytest.mark.parametrize("reference", gen_traces.REFERENCES, ids=lambda r: r.name)
def test_shipped_traces_are_what_the_seeded_generator_writes(
    reference: gen_traces.Reference,
) -> None:
    path = PACKAGE / "traces" / f"{reference.name}.csv"
    assert path.read_text(encoding="utf-8") == gen_traces.render(reference)
    trace = load_trace(path)
    assert trace.mean_service_s == 2.0
    assert 5_000 < len(trace.arrivals) < 100_000
    assert path.stat().st_size < 40_000  # small enough to read in a diff


def test_the_generator_writes_every_reference(tmp_path: Path) -> None:
    gen_traces.main([str(tmp_path)])
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(f"{r.name}.csv" for r in gen_traces.REFERENCES)


# ---------------------------------------------------------------- specs


def test_shipped_specs_resolve_like_the_operator() -> None:
    seeds = load_spec(PACKAGE / "specs" / "email-processing" / "jobqueue.yaml")
    assert (seeds.effective.min_replicas, seeds.effective.max_replicas) == (1, 10)
    assert (seeds.effective.up_depth, seeds.effective.up_latency_s) == (100, 30.0)
    assert seeds.polling_interval_s == 5.0
    tuned = load_spec(PACKAGE / "specs" / "burst-tuned" / "jobqueue.yaml")
    assert (tuned.effective.min_replicas, tuned.effective.max_replicas) == (0, 20)
    assert tuned.name == "burst-tuned"


def test_the_repositorys_example_manifests_load() -> None:
    for path in sorted((REPO / "manifests" / "examples").glob("jobqueue-*.yaml")):
        assert load_spec(path).effective.max_replicas >= 1, path.name


def test_a_bare_spec_and_the_paused_annotation() -> None:
    bare = "scaleTargetRef: {name: w}\nredis: {host: r}\nqueues: [q]\nmaxReplicas: 3\n"
    assert parse_spec(bare).effective.max_replicas == 3
    manifest = (
        "kind: JobQueue\nmetadata: {name: x, annotations: {jobqueue.dev/paused: 'true'}}\n"
        "spec: {scaleTargetRef: {name: w}, redis: {host: r}, queues: [q]}\n"
    )
    assert parse_spec(manifest).effective.paused


@pytest.mark.parametrize(
    "text",
    [
        "kind: JobQueue\nspec: {scaleTargetRef: {name: w}, redis: {host: r}, queues: []}\n",
        "scaleTargetRef: {name: w}\nredis: {host: r}\nqueues: [q]\nminReplicas: 5\n"
        "maxReplicas: 2\n",
        "kind: Deployment\n",
        "[unclosed",
    ],
)
def test_a_spec_the_operator_would_refuse_is_refused(text: str) -> None:
    with pytest.raises(SpecError):
        parse_spec(text)


# ---------------------------------------------------------------- report


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, 0.0),
        ([1.0], 99, 1.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 95, 4.0),
        ([float(i) for i in range(1, 101)], 95, 95.0),
        ([float(i) for i in range(1, 101)], 99, 99.0),
        ([float(i) for i in range(1, 101)], 0, 1.0),
    ],
)
def test_nearest_rank_percentile(values: list[float], q: float, expected: float) -> None:
    assert report.percentile(values, q) == expected


# ---------------------------------------------------------------- CLI


def tiny(
    tmp_path: Path, text: str = "# mean_service_seconds=1.0\nt_seconds,count\n0,30\n60,5\n"
) -> Path:
    path = tmp_path / "tiny.csv"
    path.write_text(text)
    return path


SEEDS_SPEC = str(PACKAGE / "specs" / "email-processing" / "jobqueue.yaml")


def test_cli_compares_the_policies_and_the_tuned_keda_beside_the_spec(tmp_path: Path) -> None:
    out_png = tmp_path / "r.png"
    args = ["simulate", "--spec", SEEDS_SPEC, "--trace", str(tiny(tmp_path))]
    args += ["--plot", str(out_png), "--tail", "120", "--markdown"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    labels = (
        "threshold (operator)",
        "KEDA default (redis listLength)",
        "SLO (operator)",
        "KEDA tuned (email-processing-tuned)",
    )
    for label in labels:
        assert f"| {label} |" in result.output
    assert "the operator's own latency-SLO" in result.output
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_json_prints_one_object_per_policy(tmp_path: Path) -> None:
    args = ["simulate", "--spec", SEEDS_SPEC, "--trace", str(tiny(tmp_path)), "--policy", "keda"]
    args += ["--policy", "slo", "--service", "lognormal:3:2", "--json"]
    args += ["--startup", "lognormal:15:0.5", "--seed", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert [s["name"] for s in payload] == ["KEDA default (redis listLength)", "SLO (operator)"]
    for row in payload:
        for key in ("replica_seconds", "wait_p50_s", "wait_p95_s", "wait_max_s"):
            assert isinstance(row[key], float)
        assert row["jobs"] == 35
        assert row["interrupted"] >= 0
        assert row["direction_changes"] >= 0
        assert row["wait_p50_s"] <= row["wait_p95_s"] <= row["wait_max_s"]
    again = CliRunner().invoke(app, args)
    assert json.loads(again.output) == payload, "deterministic for a seed"


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--service", "lognormal:3", "MEAN:CV"),
        ("--service", "weibull", "exponential"),
        ("--startup", "gamma:1:2", "lognormal:MEDIAN:SIGMA"),
        ("--keda", "SPEC", "ScaledObject"),
    ],
)
def test_cli_bad_distribution_or_scaledobject(
    tmp_path: Path, flag: str, value: str, message: str
) -> None:
    value = SEEDS_SPEC if value == "SPEC" else value
    args = ["simulate", "--spec", SEEDS_SPEC, "--trace", str(tiny(tmp_path)), "--no-plot"]
    result = CliRunner().invoke(app, [*args, flag, value])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(
    ("trace_text", "extra", "message"),
    [
        ("t_seconds,count\n0,1\n", [], "mean-service"),
        ("1,2,3\n", [], "expected"),
        ("0\n", ["--mean-service", "1", "--concurrency", "0"], "concurrency"),
    ],
)
def test_cli_usage_errors(tmp_path: Path, trace_text: str, extra: list[str], message: str) -> None:
    args = ["simulate", "--spec", SEEDS_SPEC, "--trace", str(tiny(tmp_path, trace_text))]
    result = CliRunner().invoke(app, [*args, "--no-plot", *extra])
    assert result.exit_code == 2
    assert message in result.output


def test_python_dash_m_runs_the_simulator(tmp_path: Path) -> None:
    args = ["simulate", "--spec", SEEDS_SPEC, "--trace", str(tiny(tmp_path)), "--no-plot"]
    done = subprocess.run(
        [sys.executable, "-m", "jobqueue_simulator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "threshold (operator)" in done.stdout
    assert not list(tmp_path.glob("*.png"))


def test_the_command_mounts_on_another_typer_app(tmp_path: Path) -> None:
    """The wiring the lead plans for ``jobqueue simulate``: one ``app.command`` line."""
    import typer

    from jobqueue_simulator.cli import simulate

    host = typer.Typer()

    @host.command()
    def other() -> None:
        """Stands in for the worker's own commands."""

    host.command("simulate")(simulate)
    args = ["simulate", "--spec", SEEDS_SPEC, "--trace", str(tiny(tmp_path)), "--no-plot"]
    result = CliRunner().invoke(host, [*args, "--policy", "threshold"])
    assert result.exit_code == 0, result.output
    assert "threshold (operator)" in result.output


def test_operator_env_fills_unset_fields_like_the_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = tmp_path / "bare.yaml"
    bare.write_text("scaleTargetRef: {name: w}\nredis: {host: r}\nqueues: [q]\n")
    trace = tiny(tmp_path, "# mean_service_seconds=5\n" + "0,400\n")
    args = ["simulate", "--spec", str(bare), "--trace", str(trace), "--no-plot"]
    args += ["--policy", "threshold", "--concurrency", "1"]

    def peak(*extra: str) -> int:
        result = CliRunner().invoke(app, [*args, *extra, "--json"])
        assert result.exit_code == 0, result.output
        return int(json.loads(result.output)[0]["peak_replicas"])

    monkeypatch.setenv("MAX_WORKERS", "2")
    assert peak() == 10  # the built-in default max, environment ignored
    assert peak("--operator-env") == 2
    monkeypatch.setenv("MAX_WORKERS", "zero")
    result = CliRunner().invoke(app, [*args, "--operator-env"])
    assert result.exit_code == 2


def test_without_matplotlib_the_table_prints_and_the_plot_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import now fails
    args = ["simulate", "--spec", SEEDS_SPEC, "--trace", str(tiny(tmp_path)), "--policy", "slo"]
    result = CliRunner().invoke(app, [*args, "--plot", str(tmp_path / "x.png")])
    assert result.exit_code == 1
    assert "SLO (operator)" in result.output
    assert "jobqueue-operator[sim]" in result.output
    assert not (tmp_path / "x.png").exists()


def test_a_trace_carries_its_own_seed(tmp_path: Path) -> None:
    """`# seed=N` is the default seed: each trace replays its own jobs, whoever runs it."""
    trace = tiny(tmp_path, "# mean_service_seconds=2\n# seed=7\n" + "0,30\n5,30\n")
    args = ["simulate", "--spec", SEEDS_SPEC, "--trace", str(trace), "--policy", "threshold"]
    args += ["--service", "lognormal:2:2", "--json"]

    def run(*extra: str) -> object:
        result = CliRunner().invoke(app, [*args, *extra])
        assert result.exit_code == 0, result.output
        return json.loads(result.output)

    assert run() == run("--seed", "7")
    assert run() != run("--seed", "8")
    bad = tiny(tmp_path, "# mean_service_seconds=2\n# seed=x\n0,1\n")
    result = CliRunner().invoke(
        app, ["simulate", "--spec", SEEDS_SPEC, "--trace", str(bad), "--no-plot"]
    )
    assert result.exit_code == 2
    assert "is not a whole number" in " ".join(result.output.split())
