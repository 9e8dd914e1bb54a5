"""Helpers for the chart's tests: the helm CLI with its own home, and rendered objects."""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "jobqueue-operator"
ALL_ON = Path(__file__).resolve().parent / "values-all-on.yaml"

Doc = dict[str, Any]


@dataclass(frozen=True)
class HelmResult:
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Helm:
    """The helm binary, with cache, config and data under a test directory (not ~)."""

    binary: Path
    home: Path

    def run(self, *args: str, timeout_s: float = 120.0) -> HelmResult:
        env = {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.home),
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        out = subprocess.run(
            [str(self.binary), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return HelmResult(out.returncode, out.stdout, out.stderr)

    def ok(self, *args: str, timeout_s: float = 120.0) -> str:
        result = self.run(*args, timeout_s=timeout_s)
        if result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def template(
        self,
        *values_files: Path,
        release: str = "jobqueue-operator",
        namespace: str = "jobqueue-system",
        sets: Iterable[str] = (),
        include_crds: bool = False,
    ) -> list[Doc]:
        args = ["template", release, str(CHART), "--namespace", namespace]
        for path in values_files:
            args += ["--values", str(path)]
        for item in sets:
            args += ["--set", item]
        if include_crds:
            args.append("--include-crds")
        return [d for d in yaml.safe_load_all(self.ok(*args)) if d]


def find(docs: Iterable[Doc], kind: str, name: str | None = None) -> list[Doc]:
    return [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]


def one(docs: Iterable[Doc], kind: str, name: str | None = None) -> Doc:
    found = find(docs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc["spec"]["template"]["spec"]
    return spec


def key(doc: Doc) -> tuple[str, str, str]:
    meta = doc["metadata"]
    return (doc["kind"], meta.get("namespace", ""), meta["name"])
