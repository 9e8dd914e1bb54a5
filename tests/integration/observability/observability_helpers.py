"""Shared by the observability tests: promtool runs, exposition parsing, the catalogue.

Everything here shells out to the real ``promtool`` (Debian's prometheus package,
``make promtool``) instead of re-implementing its lint rules, so a test fails for
exactly the reasons Prometheus's own tooling would.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[3]
CATALOGUE = ROOT / "docs" / "metrics.md"
MONITORING = ROOT / "manifests" / "monitoring"


def promtool() -> str:
    """The promtool binary; under CI a missing one fails (the Makefile installs it)."""
    path = shutil.which("promtool")
    if path is None:
        import os

        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("promtool not on PATH (run `make promtool`)", pytrace=False)
        pytest.skip("promtool not on PATH (run `make promtool`)")
    return path


@dataclass(frozen=True)
class ToolResult:
    code: int
    output: str


def run_promtool(*args: str, stdin: str | None = None, cwd: Path | None = None) -> ToolResult:
    out = subprocess.run(
        [promtool(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )
    return ToolResult(out.returncode, (out.stdout + out.stderr).strip())


def check_metrics(exposition: str) -> list[str]:
    """promtool's complaints about a /metrics body, one per line (empty: clean).

    A non-zero exit without a message still counts as a complaint.
    """
    result = run_promtool("check", "metrics", stdin=exposition)
    problems = [line for line in result.output.splitlines() if line.strip()]
    if result.code != 0 and not problems:
        problems = [f"promtool exited {result.code} without a message"]
    return problems


def scrape(url: str, timeout_s: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # loopback only
        body: bytes = resp.read()
    return body.decode()


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def samples(exposition: str) -> list[Sample]:
    out = []
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            out.append(Sample(s.name, dict(s.labels), s.value))
    return out


def family_names(exposition: str) -> set[str]:
    """Metric family names as exposed (``# TYPE`` lines), counters with ``_total``."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            del kind
    return names


# ---------------------------------------------------------------- the catalogue
@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    type: str
    exporter: str  # "worker" | "operator"
    planned: bool


_ROW = re.compile(r"^\|\s*`(?P<name>[a-z_:][a-z0-9_:]*)`\s*\|\s*(?P<type>[a-z]+)\s*\|")


def catalogue() -> list[CatalogueEntry]:
    """The metric rows of docs/metrics.md, by section.

    Sections are ``## Worker ...``, ``## Operator ...``, ``## Planned ...``
    (planned rows name their exporter in the section heading) and
    ``## Recording rules`` (names the rules create, exporter ``rules``).
    """
    entries = []
    exporter = ""
    planned = False
    for line in CATALOGUE.read_text().splitlines():
        if line.startswith("## "):
            heading = line[3:].lower()
            planned = heading.startswith("planned")
            exporter = (
                "worker"
                if "worker" in heading
                else "operator"
                if "operator" in heading
                else "rules"
                if "recording" in heading
                else ""
            )
            continue
        m = _ROW.match(line)
        if m and exporter:
            entries.append(CatalogueEntry(m["name"], m["type"], exporter, planned))
    return entries


def catalogued_names(*, include_planned: bool = True) -> set[str]:
    return {e.name for e in catalogue() if include_planned or not e.planned}


# Series names Prometheus derives from a family: histogram parts and the
# client library's ``_created`` companions.
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def base_name(series: str, known: Iterable[str]) -> str:
    known = set(known)
    if series in known:
        return series
    for suffix in _SUFFIXES:
        if series.endswith(suffix):
            stem = series[: -len(suffix)]
            # A counter's companion is ``<name>_created`` for ``<name>_total``.
            for candidate in (stem, f"{stem}_total"):
                if candidate in known:
                    return candidate
    return series


def rule_groups(path: Path) -> dict[str, object]:
    """``spec`` of the PrometheusRule in ``path`` as a plain rules file body."""
    doc = yaml.safe_load(path.read_text())
    assert doc["kind"] == "PrometheusRule", doc.get("kind")
    return {"groups": doc["spec"]["groups"]}


_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
    "unless", "bool", "offset", "inf", "nan",
}  # fmt: skip


def promql_metric_names(expr: str) -> set[str]:
    """Metric names an expression reads (a conservative lexer, enough for our rules).

    Drops strings, label matchers ``{...}``, ranges ``[...]``, grouping clauses
    ``by (...)``/``on (...)``, function calls and numbers; what is left are names.
    """
    s = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    s = re.sub(r"\{[^}]*\}", "", s)
    s = re.sub(r"\[[^\]]*\]", "", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", s)
    names = set()
    for m in re.finditer(r"(?<![0-9A-Za-z_.:])[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        word = m.group(0)
        rest = s[m.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _PROMQL_WORDS:
            continue
        names.add(word)
    return names
