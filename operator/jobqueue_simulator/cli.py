"""``simulate``: compare scaling policies offline on an arrival trace.

Exposed as a typer app (``app``, with the ``simulate`` command) so the
``jobqueue`` CLI can mount it, and runnable as ``python -m
jobqueue_simulator simulate ...``. The command function is
:func:`simulate`; registering it on another typer app is one line
(``other.command("simulate")(simulate)``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from jobqueue_operator.settings import OperatorSettings
from jobqueue_simulator import report
from jobqueue_simulator.compare import ALL_POLICIES, PolicyName, Scenario, compare
from jobqueue_simulator.engine import Distribution, ServiceModel
from jobqueue_simulator.policies import KedaSettings
from jobqueue_simulator.scaledobject import ScaledObjectError, load_scaled_object
from jobqueue_simulator.spec_file import SpecError, load_spec
from jobqueue_simulator.traces import TraceError, load_trace

app = typer.Typer(
    help="Offline simulation of queue autoscaling policies.",
    no_args_is_help=True,
    add_completion=False,
)

SLO_NOTE = (
    "SLO (operator): the operator's own latency-SLO / rate sizing (spec.slo); a spec "
    "without slo gets maxWaitSeconds from --max-wait and concurrencyPerPod from --concurrency."
)


@app.callback()
def _group() -> None:
    """Offline simulation of queue autoscaling policies."""


@app.command("simulate")
def simulate(
    *,
    spec: Annotated[
        Path, typer.Option(help="JobQueue manifest (or a bare spec) in YAML", exists=True)
    ],
    trace: Annotated[Path, typer.Option(help="arrival trace CSV (t_seconds[,count])", exists=True)],
    policy: Annotated[
        list[PolicyName] | None,
        typer.Option(help="policy to run; repeat for several (default: all three)"),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(help="random seed (service times, pod choice); default: the trace's, else 0"),
    ] = None,
    service: Annotated[
        str,
        typer.Option(help="exponential, constant, lognormal or lognormal:MEAN:CV"),
    ] = "exponential",
    mean_service: Annotated[
        float | None,
        typer.Option(help="mean service time in seconds (default: the trace's metadata)"),
    ] = None,
    cv: Annotated[float, typer.Option(help="coefficient of variation (lognormal only)")] = 1.0,
    concurrency: Annotated[int, typer.Option(help="jobs one pod runs at once")] = 10,
    startup_delay: Annotated[
        float, typer.Option(help="seconds from pod creation until it can work")
    ] = 15.0,
    startup: Annotated[
        str | None,
        typer.Option(help="start-up times: SECONDS or lognormal:MEDIAN:SIGMA (with a tail)"),
    ] = None,
    grace: Annotated[
        float, typer.Option(help="terminationGracePeriodSeconds: a removed pod drains this long")
    ] = 30.0,
    actuation: Annotated[
        float, typer.Option(help="seconds from a replica-count write to the ReplicaSet acting")
    ] = 0.0,
    staleness: Annotated[
        float, typer.Option(help="how old the queue figures a policy sees are, in seconds")
    ] = 0.0,
    keda: Annotated[
        Path | None,
        typer.Option(
            help="a KEDA ScaledObject to compare against (default: keda-tuned.yaml beside the spec)"
        ),
    ] = None,
    tail: Annotated[float, typer.Option(help="seconds simulated after the last arrival")] = 600.0,
    max_wait: Annotated[
        float | None,
        typer.Option(
            help="maxWaitSeconds for the SLO policy when the spec has no slo "
            "(default: the spec's scale-up latency)"
        ),
    ] = None,
    keda_list_length: Annotated[
        int, typer.Option(help="KEDA model's listLength (jobs per pod)")
    ] = 5,
    plot: Annotated[
        Path | None, typer.Option(help="PNG to write (default: simulate-<trace>.png)")
    ] = None,
    no_plot: Annotated[bool, typer.Option("--no-plot", help="do not write a PNG")] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="print one JSON object per policy instead of a table")
    ] = False,
    markdown: Annotated[bool, typer.Option(help="print the table as Markdown")] = False,
    operator_env: Annotated[
        bool,
        typer.Option(
            "--operator-env",
            help="fill unset spec fields from the operator's environment variables "
            "(SCALE_UP_QUEUE_DEPTH, MIN_WORKERS, ...) instead of its built-in defaults",
        ),
    ] = False,
) -> None:
    """Run the policies over the trace and print replica-seconds, waits, scale actions."""
    out = Console(width=None if sys.stdout.isatty() else 160)
    try:
        # The same resolution the operator does at boot, when asked to mirror a deployment.
        defaults = OperatorSettings().scaling_defaults() if operator_env else None
        loaded = load_spec(spec, defaults)
        arrivals = load_trace(trace)
        distribution, mean_service, cv = parse_service(service, mean_service, cv)
        startup_delay, startup_sigma = parse_startup(startup, startup_delay)
        keda_path = keda if keda is not None else spec.parent / "keda-tuned.yaml"
        tuned = load_scaled_object(keda_path) if keda is not None or keda_path.exists() else None
        mean = mean_service if mean_service is not None else arrivals.mean_service_s
        if mean is None:
            raise typer.BadParameter(
                "give --mean-service or put '# mean_service_seconds=...' in the trace"
            )
        scenario = Scenario(
            service=ServiceModel(distribution, mean, cv),
            concurrency=concurrency,
            startup_delay_s=startup_delay,
            tail_s=tail,
            seed=seed if seed is not None else (arrivals.seed or 0),
            keda=KedaSettings(list_length=keda_list_length),
            max_wait_s=max_wait,
            keda_tuned=tuned,
            grace_s=grace,
            startup_sigma=startup_sigma,
            actuation_s=actuation,
            staleness_s=staleness,
        )
        chosen = policy or (
            (*ALL_POLICIES, PolicyName.KEDA_TUNED) if tuned is not None else ALL_POLICIES
        )
        results = compare(loaded, arrivals, scenario, chosen)
    except (SpecError, TraceError, ScaledObjectError, ValidationError, ValueError) as exc:
        if isinstance(exc, typer.BadParameter):
            raise
        raise typer.BadParameter(str(exc)) from None
    summaries = [report.summarize(r) for r in results]
    title = (
        f"{loaded.name} on {trace.stem}: {len(arrivals.arrivals):,} jobs, "
        f"{distribution.value} service mean {mean:g}s, concurrency {concurrency}, "
        f"start-up {startup_delay:g}s, KEDA listLength {keda_list_length}, seed {scenario.seed}"
    )
    if json_out:
        print(json.dumps([s.as_dict() for s in summaries], indent=1))
    elif markdown:
        out.print(report.markdown(summaries), markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(report.table(summaries, title))
    if any(name is PolicyName.SLO for name in chosen) and not json_out:
        out.print(SLO_NOTE, markup=False, highlight=False, soft_wrap=True)
    if not no_plot and (plot is not None or not json_out):
        target = plot if plot is not None else Path(f"simulate-{trace.stem}.png")
        try:
            report.plot(results, target, title)
        except ModuleNotFoundError as exc:  # the operator image does not ship the sim extra
            err = Console(stderr=True)
            err.print(
                f"no plot: {exc.name} is missing; install jobqueue-operator[sim] or pass --no-plot",
                markup=False,
                highlight=False,
            )
            raise typer.Exit(1) from None
        if not json_out:
            out.print(f"plot: {target}", markup=False, highlight=False)


def parse_service(
    text: str, mean: float | None, cv: float
) -> tuple[Distribution, float | None, float]:
    """``exponential``, ``constant``, ``lognormal`` or ``lognormal:MEAN:CV``."""
    name, *numbers = text.split(":")
    try:
        distribution = Distribution(name)
        values = [float(n) for n in numbers]
    except ValueError:
        raise ValueError(
            f"--service {text!r}: exponential, constant or lognormal:MEAN:CV"
        ) from None
    if values and (distribution is not Distribution.LOGNORMAL or len(values) != 2):
        raise ValueError(f"--service {text!r}: only lognormal takes :MEAN:CV")
    if values:
        return distribution, values[0], values[1]
    return distribution, mean, cv


def parse_startup(text: str | None, default_s: float) -> tuple[float, float]:
    """``SECONDS`` or ``lognormal:MEDIAN:SIGMA`` → (median, sigma)."""
    if text is None:
        return default_s, 0.0
    name, *numbers = text.split(":")
    try:
        if not numbers:
            return float(name), 0.0
        median, sigma = (float(n) for n in numbers)
    except ValueError:
        raise ValueError(f"--startup {text!r}: SECONDS or lognormal:MEDIAN:SIGMA") from None
    if name != "lognormal" or median < 0 or sigma < 0:
        raise ValueError(f"--startup {text!r}: SECONDS or lognormal:MEDIAN:SIGMA")
    return median, sigma
