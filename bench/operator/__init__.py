"""Operator benchmarks (issue 7, part 3): reaction time, cost per poll, scale.

Run as ``python -m bench.operator`` from the repository root. Everything runs on
this machine: the devkit's real control plane (etcd, kube-apiserver,
kube-controller-manager on 127.0.0.1), a real ``redis-server`` on 127.0.0.1 and
the real ``jobqueue-operator`` console script under its own ServiceAccount token.
No worker runs: the Deployments' Pods stay Pending, because what is measured is
the operator, not the workers.
"""

from bench.operator import _paths  # noqa: F401  (puts the devkit and sources on sys.path)
