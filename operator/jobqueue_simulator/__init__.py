"""Offline discrete-event simulator for the operator's scaling policy (issue 8 item 5).

It drives the operator's own ``jobqueue_operator.policy.decide`` (never a copy)
with an arrival trace, and compares it with a model of KEDA + the HPA and a
reference latency-SLO sizing. Modules: ``engine`` (the pure event loop),
``policies`` (the adapters), ``traces`` (trace I/O and generators),
``spec_file`` (JobQueue YAML → effective spec), ``compare`` (several policies,
one seed), ``report`` (stats, table, plot), ``cli`` (the ``simulate`` command).
No Kubernetes, Redis or asyncio here: an import-linter contract keeps it so.
"""
