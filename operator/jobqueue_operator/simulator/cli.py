"""``simulate``: compare scaling policies offline on an arrival trace.

Exposed as a typer app (``app``, with the ``simulate`` command) so the
``jobqueue`` CLI can mount it, and runnable as ``python -m
jobqueue_operator.simulator simulate ...``. The command function is
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
from jobqueue_operator.simulator import report
from jobqueue_operator.simulator.compare import ALL_POLICIES, PolicyName, Scenario, compare
from jobqueue_operator.simulator.engine import Distribution, ServiceModel
from jobqueue_operator.simulator.policies import KedaSettings
from jobqueue_operator.simulator.spec_file import SpecError, load_spec
from jobqueue_operator.simulator.traces import TraceError, load_trace

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
    seed: Annotated[int, typer.Option(help="random seed (service times, pod choice)")] = 0,
    service: Annotated[
        Distribution, typer.Option(help="service-time distribution")
    ] = Distribution.EXPONENTIAL,
    mean_service: Annotated[
        float | None,
        typer.Option(help="mean service time in seconds (default: the trace's metadata)"),
    ] = None,
    cv: Annotated[float, typer.Option(help="coefficient of variation (lognormal only)")] = 1.0,
    concurrency: Annotated[int, typer.Option(help="jobs one pod runs at once")] = 10,
    startup_delay: Annotated[
        float, typer.Option(help="seconds from pod creation until it can work")
    ] = 15.0,
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
        Path | None, typer.Option("--json", help="also write the summaries as JSON")
    ] = None,
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
        mean = mean_service if mean_service is not None else arrivals.mean_service_s
        if mean is None:
            raise typer.BadParameter(
                "give --mean-service or put '# mean_service_seconds=...' in the trace"
            )
        scenario = Scenario(
            service=ServiceModel(service, mean, cv),
            concurrency=concurrency,
            startup_delay_s=startup_delay,
            tail_s=tail,
            seed=seed,
            keda=KedaSettings(list_length=keda_list_length),
            max_wait_s=max_wait,
        )
        results = compare(loaded, arrivals, scenario, policy or ALL_POLICIES)
    except (SpecError, TraceError, ValidationError, ValueError) as exc:
        if isinstance(exc, typer.BadParameter):
            raise
        raise typer.BadParameter(str(exc)) from None
    summaries = [report.summarize(r) for r in results]
    title = (
        f"{loaded.name} on {trace.stem}: {len(arrivals.arrivals):,} jobs, "
        f"{service.value} service mean {mean:g}s, concurrency {concurrency}, "
        f"start-up {startup_delay:g}s, KEDA listLength {keda_list_length}, seed {seed}"
    )
    if markdown:
        out.print(report.markdown(summaries), markup=False, highlight=False, soft_wrap=True)
    else:
        out.print(report.table(summaries, title))
    if any(name is PolicyName.SLO for name in policy or ALL_POLICIES):
        out.print(SLO_NOTE, markup=False, highlight=False, soft_wrap=True)
    if json_out is not None:
        payload = {"title": title, "summaries": [s.as_dict() for s in summaries]}
        json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    if not no_plot:
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
        out.print(f"plot: {target}", markup=False, highlight=False)
