"""The operator section of BENCHMARKS.md, written only between its two markers.

Another harness (``python -m bench.run``) writes the rest of that file, so this
module replaces the text between ``BEGIN`` and ``END`` and nothing else; when the
markers are missing they are appended at the end of the file.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.sections import write_between

BEGIN = "<!-- operator-bench:begin -->"
END = "<!-- operator-bench:end -->"

# KEDA's and the HPA's defaults: kedacore/keda-docs v2.21 reference/scaledobject-spec.md,
# Kubernetes pkg/apis/autoscaling/v2/defaults.go and kube-controller-manager's flags.
KEDA_POLLING_S = 30.0
HPA_SYNC_S = 15.0


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between the markers of ``path`` (created if missing)."""
    write_between(path, BEGIN, END, section)


def _f(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _run_line(meta: dict[str, Any]) -> str:
    """One run of a merged result: when, what it measured, on which tree."""
    args = meta.get("args") or {}
    what = [] if args.get("skip_reaction") else ["reaction and cost"]
    what.append(f"scale {args.get('scale', '?')}")
    date = str(meta.get("date", "")).rsplit(" and ", 1)[-1]
    return f"{date} ({', '.join(what)}): {meta.get('git')}"


def _reported(s: dict[str, Any]) -> str:
    """ "12 s", or "291 of 1000 only, after 600 s" when the wait for first statuses ran out."""
    n, done = s["jobqueues"], s.get("reported_before_window", s["jobqueues"])
    took = _f(s["all_reported_after_s"], 0)
    observed = s.get("observed_redis_before_window")
    if observed is None:  # runs before 86fbeb5 waited for a status with a Redis observation
        return (
            f"{took} s" if done >= n else f"**{done} of {n} only** had read Redis, after {took} s"
        )
    text = f"{took} s" if done >= n else f"**{done} of {n} only**, after {took} s"
    if observed is not None and observed < done:
        text += f" ({done - observed} without a successful Redis read yet)"
    return text


def keda_lines() -> list[str]:
    """The KEDA comparison and its derivation (same event: 1 → 2 replicas)."""
    return [
        "**What KEDA's documented defaults imply for the same event** (source: "
        "kedacore/keda-docs v2.21 "
        "`reference/scaledobject-spec.md`, `concepts/scaling-deployments.md` and Kubernetes "
        "`pkg/apis/autoscaling/v2/defaults.go`): `pollingInterval` 30 s, HPA sync period 15 s, "
        "tolerance 0.1, scale-up with no stabilization window.",
        "",
        f"- *Our trial (1 → 2, the Deployment already runs):* KEDA's poll plays no part; the "
        f"HPA notices at its next sync, which is U(0, {HPA_SYNC_S:g}] s after the crossing. "
        f"Median ≈ {HPA_SYNC_S / 2:g} s, worst case {HPA_SYNC_S:g} s (the HPA's sync period), "
        "before the scale write itself. The 10 % tolerance adds a dead band our "
        "threshold rule does not have (a crossing by less than 10 % of the target does nothing).",
        f"- *From zero (0 → 1):* the next KEDA poll, U(0, {KEDA_POLLING_S:g}] s: median ≈ "
        f"{KEDA_POLLING_S / 2:g} s, worst {KEDA_POLLING_S:g} s (KEDA's polling interval).",
        "- *Ours, by construction:* the next poll of the JobQueue is U(0, interval] s away, "
        "plus one tick of work; expected median ≈ interval/2, worst ≈ interval + tick.",
    ]


def render(results: dict[str, Any]) -> str:
    """Markdown for one run (only what was measured; missing parts say so)."""
    meta = results["meta"]
    out: list[str] = [
        "## Operator: reaction time, cost per poll, scale",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']}",
        f"- versions: {meta['versions']}",
        "- source (the operator tree each run measured): "
        + "; ".join(_run_line(m) for m in [*meta.get("earlier_runs", []), meta])
        + (
            " (a later run's scale point replaces an earlier one of the same size)"
            if meta.get("earlier_runs")
            else ""
        ),
        (
            f"- command: `{meta['via']}`, whose operator part is `{meta['command']}` "
            "(in the same run as the worker section above)"
            if meta.get("via")
            else f"- command: `{meta['command']}`"
        ),
        f"- load average (1, 5, 15 min) at start / end: {meta.get('loadavg_start')} / "
        f"{meta.get('loadavg_end')} (the end includes the benchmark's own control plane, "
        "Redis and operator at the largest scale point)",
        "",
        "Method: the devkit's real control plane (etcd, kube-apiserver, kube-controller-manager "
        "on 127.0.0.1; no scheduler, so Pods stay Pending), a real redis-server on 127.0.0.1 and "
        "the real `jobqueue-operator` console script, standalone, under its own ServiceAccount "
        "token. Jobs are enqueued with `jobqueue_worker.producer.Producer.enqueue_many`. "
        "No worker runs. Code: `bench/operator/`.",
        "",
    ]
    reaction = results.get("reaction") or {}
    if reaction:
        out += [
            "### Reaction time",
            "",
            "From the return of the enqueue that takes the queue to its scale-up threshold "
            "(10 waiting jobs, 9 already there) to the Deployment's `spec.replicas` 1 → 2 "
            "arriving on the benchmark's own watch. Each trial waits U(0, interval) before the "
            "crossing so it lands at a random phase of the poll cycle. Each trial has a "
            "JobQueue and Deployment of its own, settled at 1 replica with the 9 jobs "
            "waiting for more than a poll: one JobQueue reused would have to scale back "
            "down and up again, which the policy's 60 s direction dwell holds.",
            "",
            "| polling interval | trials | median | max | min | mean | target (interval + 1 s) "
            "| KEDA defaults, same event (computed median / worst) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, r in reaction.items():
            interval = float(key)
            ok = "met" if r["max_s"] <= interval + 1 else "**missed**"
            out.append(
                f"| {interval:g} s | {r['trials']} | {_f(r['median_s'])} s | {_f(r['max_s'])} s "
                f"| {_f(r['min_s'])} s | {_f(r['mean_s'])} s | {interval + 1:g} s: {ok} "
                f"| ≈ {HPA_SYNC_S / 2:g} s / {HPA_SYNC_S:g} s |"
            )
        out.append("")
        for key, r in reaction.items():
            times = sorted(t["reaction_s"] for t in r["raw"])
            out.append(
                f"- {float(key):g} s, every trial sorted (s): "
                + ", ".join(f"{t:.2f}" for t in times)
                + "."
            )
        out += ["", *keda_lines(), ""]
    costs = results.get("cost") or {}
    if costs:
        out += [
            "### Cost per poll (one JobQueue, one queue, quiet)",
            "",
            "Polls counted by the operator (`jobqueue_operator_loop_duration_seconds_count`, "
            "`jobqueue_loop_duration_seconds_count` before 9ddf289). Redis round "
            "trips = `INFO stats` `total_reads_processed` delta (our INFO calls excluded); "
            "commands = `INFO commandstats` delta. API requests = kube-apiserver "
            '`apiserver_flowcontrol_dispatched_requests_total{flow_schema="service-accounts"}` '
            "delta (the operator is the only ServiceAccount client) and, per verb and resource, "
            "`apiserver_request_total` for the resources only the operator touches.",
            "",
            "| interval | window | polls | Redis round trips / poll | Redis commands / poll "
            "| operator's own round-trip metric | API requests / poll | API requests by kind "
            "/ poll |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for key, c in costs.items():
            kinds = ", ".join(
                f"{k} {_f(v)}" for k, v in c["api_requests_by_verb_resource_per_poll"].items()
            )
            own = c["operator_round_trips_metric"]
            own_text = "absent (no such metric)" if own is None else _f(own / c["polls"])
            out.append(
                f"| {float(key):g} s | {_f(c['window_s'], 0)} s | {_f(c['polls'], 0)} "
                f"| {_f(c['redis_round_trips_per_poll'])} | {_f(c['redis_commands_per_poll'], 1)} "
                f"| {own_text} | {_f(c['api_requests_per_poll'])} | {kinds} |"
            )
        first = next(iter(costs.values()))
        names = ", ".join(f"{k} {v}" for k, v in sorted(first["redis_commands_by_name"].items()))
        out += ["", f"Redis commands in the first window, by name: {names}.", ""]
    scale = results.get("scale") or []
    if scale:
        out += [
            "### Scale (5 s polling interval unless stated)",
            "",
            "Fresh control plane, Redis and operator per row; N Deployments + N JobQueues "
            "(each its own queue with 3 waiting jobs, inside the band, so nothing scales); "
            "measured over the window after every JobQueue had reported status once (or, where "
            "the last column says so, after the wait for that ran out). The achieved interval "
            "is the JobQueues times the time between the two scrapes of the operator's poll "
            "count, over the polls counted (rows from before 2026-12-07 12:00 UTC used the "
            "whole window, which also holds the other probes: at 3,000 JobQueues that read "
            "5.31 s where the polls' own lateness histogram had 99 % within 0.25 s).",
            "",
            "| JobQueues | interval | window | CPU (cores) | waiting for a CPU (cores) "
            "| CPU ms / poll | RSS peak in window | RSS slope in window "
            "| RSS lifetime peak | achieved interval per JobQueue | mean tick duration "
            "| Redis round trips / JobQueue / poll | API requests / poll "
            "| set-up: create / all reported |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for s in scale:
            c = s["cost"]
            out.append(
                f"| {s['jobqueues']} | {s['interval_s']} s | {_f(s['window_s'], 0)} s "
                f"| {_f(s['cpu_cores'], 3)} | {_f(s.get('runnable_waiting_cores'), 3)} "
                f"| {_f(s['cpu_ms_per_poll'])} "
                f"| {_f(s['rss_peak_window_mib'], 1)} MiB "
                f"| {_slope(s.get('rss_slope_mib_per_min'))}"
                f"{_half(s.get('rss_slope_second_half_mib_per_min'))} "
                f"| {_f(s['rss_peak_lifetime_mib'], 1)} MiB "
                f"| {_f(s['achieved_interval_s'])} s "
                f"| {_f(c['operator_loop_seconds_per_poll'], 3)} s "
                f"| {_f(s['redis_round_trips_per_jobqueue_per_poll'])} "
                f"| {_f(c['api_requests_per_poll'])} "
                f"| {_f(s['create_s'], 0)} s / {_reported(s)} |"
            )
        out.append("")
        out += _scale_details(scale)
    skipped = results.get("skipped") or []
    if skipped:
        out += ["Not measured in this run: " + "; ".join(skipped) + ".", ""]
    notes = results.get("notes") or []
    if notes:
        out += ["### Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(out)


def _slope(mib_per_min: float | None) -> str:
    # Older saved results have no slope; the table says so instead of a zero.
    return "not measured" if mib_per_min is None else f"{mib_per_min:+.2f} MiB/min"


def _half(mib_per_min: float | None) -> str:
    return "" if mib_per_min is None else f" (second half {mib_per_min:+.2f})"


def _scale_details(scale: list[dict[str, Any]]) -> list[str]:
    """Per-kind API counts and apiserver latency per row, then the profile if one ran."""
    out = [
        "Per scale point, API requests per poll by kind, and the apiserver's own mean "
        "time per request of that kind (`apiserver_request_duration_seconds`):",
        "",
    ]
    for s in scale:
        c = s["cost"]
        lat = c.get("apiserver_mean_seconds_by_verb_resource") or {}
        kinds = ", ".join(
            _kind(k, v, lat.get(k, 0.0))
            for k, v in c["api_requests_by_verb_resource_per_poll"].items()
        )
        extra = []
        if c.get("operator_api_errors"):
            extra.append(f"operator API errors {c['operator_api_errors']}")
        if c.get("api_rejected_operator_identity"):
            extra.append(f"APF rejections {_f(c['api_rejected_operator_identity'], 0)}")
        if c.get("operator_redis_errors"):
            extra.append(f"failed Redis polls {_f(c['operator_redis_errors'], 0)}")
        late = c.get("poll_lateness")
        if late and late.get("share_late") is not None:
            p99 = late["p99_at_most_s"]
            tail = (
                "over 1 % of them later than the histogram's largest bound"
                if p99 == math.inf
                else f"99 % within {_f(p99, 2)} s"
            )
            extra.append(
                f"polls more than 1 s after they were due: {_f(100 * late['share_late'], 1)} % "
                f"of {_f(late['polls'], 0)} (mean lateness {_f(late['mean_s'], 3)} s, {tail})"
            )
        writes = c.get("status_writes")
        if writes:
            extra.append(
                f"status writes off the poll: {_f(writes['written'], 0)} written in the window, "
                f"a mean {_f(writes['mean_delay_s'], 1)} s from made to written, "
                f"{_f(writes['superseded'], 0)} replaced by a newer one before their turn, "
                f"{_f(writes['pending_at_end'], 0)} waiting at its end"
            )
        events = c.get("events") or {"by_reason": c.get("event_reasons")}
        if events.get("by_reason"):
            extra.append(f"Events in the namespace so far, by reason {events['by_reason']}")
        if events.get("warnings"):
            extra.append(f"commonest warnings {events['warnings']}")
        tail = f"; {'; '.join(extra)}" if extra else ""
        label = f"{s['jobqueues']} JobQueue" + ("" if s["jobqueues"] == 1 else "s")
        out.append(f"- {label}: {kinds}{tail}.")
    out.append("")
    for s in scale:
        prof = s.get("profile")
        if not prof:
            continue
        out += [
            f"#### Profile: {s['jobqueues']} JobQueues (py-spy, {prof['samples']} on-CPU samples "
            f"at {prof['rate_hz']} Hz, after the measured window)",
            "",
            "| function (self time) | share | our function (inclusive) | share |",
            "|---|---|---|---|",
        ]
        for (fs, vs), (fi, vi) in zip(prof["self"][:12], prof["inclusive_ours"][:12], strict=False):
            out.append(f"| `{fs}` | {100 * vs:.1f} % | `{fi}` | {100 * vi:.1f} % |")
        pk = ", ".join(f"{k} {100 * v:.0f} %" for k, v in prof["by_package_self"][:10])
        out += ["", f"Self time by package: {pk}.", ""]
    return out


def _kind(kind: str, per_poll: float, mean_s: float) -> str:
    """One request kind of a scale row: per poll, and the API server's mean time.

    A watch is one long request: it is counted when it ends (the operator then
    starts it again), and its time is how long it ran, not a latency.
    """
    if kind.startswith("WATCH "):
        return f"{kind} {_f(per_poll)} (restarted; had run {_f(mean_s, 0)} s)"
    return f"{kind} {_f(per_poll)} ({_f(1000 * mean_s, 1)} ms)"
