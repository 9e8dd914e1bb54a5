"""A small Dockerfile parser and the checks we can run without a Docker engine.

The CI machines cannot build images, so what a build would catch late (a COPY of
a path that does not exist or that .dockerignore drops, an entrypoint that is no
console script) and what review would miss (root user, compilers in the final
stage) is checked here from the text. Every check returns a list of problems, so
the tests can show them all at once and can feed deliberately bad Dockerfiles to
prove each check bites.

Only the Dockerfile features our files use are supported: comments, ``\\``
continuations, ``ARG`` before ``FROM`` with ``${VAR}``/``$VAR`` substitution,
``FROM image AS name``, flags like ``--from=``/``--chown=``, exec (JSON) and shell
forms. Heredocs and a changed ``escape`` directive are not.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# ---------------------------------------------------------------- Dockerfile


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    flags: dict[str, str]
    args: list[str]  # exec form: the JSON list; shell form: shlex-split (RUN: one string)
    exec_form: bool
    line: int


@dataclass
class Stage:
    index: int
    base: str  # after ARG substitution
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass
class Dockerfile:
    stages: list[Stage]
    global_args: dict[str, str]

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def stage(self, ref: str) -> Stage | None:
        for s in self.stages:
            if s.name == ref.lower() or (ref.isdigit() and s.index == int(ref)):
                return s
        return None


_VAR = re.compile(r"\$(?:\{(\w+)(?::-([^}]*))?\}|(\w+))")


def substitute(text: str, variables: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3) or ""
        default = m.group(2)
        value = variables.get(name)
        if value:
            return value
        return default if default is not None else ""

    return _VAR.sub(one, text)


def _logical_lines(text: str) -> Iterable[tuple[int, str]]:
    """Join ``\\`` continuations and drop comment lines (also inside continuations)."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not buffer):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer.append(stripped[:-1].strip())
            continue
        buffer.append(stripped)
        yield start, " ".join(p for p in buffer if p)
        buffer = []
    if buffer:
        yield start, " ".join(buffer)


def _split_flags(rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, value = token[2:].partition("=")
        flags[name.lower()] = value
        rest = rest.lstrip()
    return flags, rest


def parse(text: str) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line, logical in _logical_lines(text):
        keyword, _, rest = logical.partition(" ")
        keyword = keyword.upper()
        rest = rest.strip()
        if keyword == "ARG" and not stages:
            name, _, default = rest.partition("=")
            global_args[name.strip()] = default.strip().strip('"')
            continue
        flags, rest = (
            _split_flags(rest) if keyword in {"FROM", "COPY", "ADD", "RUN"} else ({}, rest)
        )
        if keyword == "FROM":
            words = rest.split()
            alias = words[2].lower() if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(len(stages), substitute(words[0], global_args), alias))
            continue
        if not stages:
            raise ValueError(f"line {line}: {keyword} before the first FROM")
        exec_form = rest.startswith("[")
        if exec_form:
            args = json.loads(rest)
        elif keyword == "RUN":
            args = [rest]
        else:
            args = shlex.split(rest)
        stages[-1].instructions.append(Instruction(keyword, flags, args, exec_form, line))
    if not stages:
        raise ValueError("no FROM instruction")
    return Dockerfile(stages, global_args)


# ---------------------------------------------------------------- .dockerignore


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's (moby/patternmatcher) syntax: ``**`` any depth, ``*``/``?`` within a segment."""
    out = ["^"]
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i)
            if end == -1:
                out.append(re.escape(c))
            else:
                out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(c))
        i += 1
    out.append("$")
    return re.compile("".join(out))


@dataclass(frozen=True)
class DockerIgnore:
    rules: tuple[tuple[bool, re.Pattern[str], str], ...]  # (negated, regex, original)

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        rules = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = line[1:].strip() if negated else line
            cleaned = str(PurePosixPath("/" + pattern))[1:] or "."
            rules.append((negated, _pattern_regex(cleaned), line))
        return cls(tuple(rules))

    def ignored(self, path: str) -> bool:
        """Last matching rule wins; a rule matches a path or any of its parent folders."""
        parts = PurePosixPath(path).parts
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for negated, regex, _ in self.rules:
            if any(regex.match(c) for c in candidates):
                result = not negated
        return result


# ---------------------------------------------------------------- checks

COMPILERS = re.compile(
    r"\b(gcc|g\+\+|cc|clang|build-essential|make|cmake|gfortran|rustc|cargo"
    r"|python3?-dev|libc6?-dev|linux-headers|musl-dev)\b"
)
_INSTALLERS = re.compile(r"\b(apt-get|apt|apk|yum|dnf|microdnf)\b.*\binstall\b")


def tracked_files(repo: Path, source: Path) -> list[str]:
    """Files git tracks under ``source`` (repo-relative); rglob when git is unavailable."""
    rel = source.relative_to(repo).as_posix()
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z", "--", rel],
            cwd=repo,
            capture_output=True,
            check=True,
            timeout=30,
        ).stdout.decode()
        files = [f for f in out.split("\0") if f]
        if files:
            return files
    except (OSError, subprocess.SubprocessError):
        pass
    return [
        p.relative_to(repo).as_posix()
        for p in source.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]


def check_copy_sources(df: Dockerfile, repo: Path, ignore: DockerIgnore) -> list[str]:
    """Every COPY/ADD source from the context exists, and .dockerignore lets it (all of it) in."""
    problems = []
    for stage in df.stages:
        for ins in stage.all("COPY") + stage.all("ADD"):
            if "from" in ins.flags:
                continue
            if len(ins.args) < 2:
                problems.append(f"line {ins.line}: {ins.keyword} needs a source and a destination")
                continue
            for src in ins.args[:-1]:
                where = f"line {ins.line}: {ins.keyword} {src}"
                if re.match(r"^[a-z]+://", src):
                    problems.append(f"{where}: remote sources are not reproducible; use COPY")
                    continue
                clean = PurePosixPath(src.lstrip("/"))
                if ".." in clean.parts:
                    problems.append(f"{where}: escapes the build context")
                    continue
                matches = sorted(repo.glob(str(clean))) if str(clean) != "." else [repo]
                if not matches:
                    problems.append(f"{where}: does not exist in the repository")
                    continue
                for match in matches:
                    rel = match.relative_to(repo).as_posix()
                    if ignore.ignored(rel):
                        problems.append(f"{where}: {rel} is excluded by .dockerignore")
                        continue
                    if match.is_dir():
                        files = tracked_files(repo, match)
                        dropped = [f for f in files if ignore.ignored(f)]
                        if dropped or not files:
                            problems.append(
                                f"{where}: .dockerignore drops {dropped[:5] or 'every file'}"
                            )
    return problems


def check_copy_from(df: Dockerfile) -> list[str]:
    problems = []
    for stage in df.stages:
        for ins in stage.all("COPY"):
            ref = ins.flags.get("from")
            if ref is None:
                continue
            source = df.stage(ref)
            if source is None or source.index >= stage.index:
                problems.append(f"line {ins.line}: COPY --from={ref} names no earlier stage")
    return problems


def check_stages(df: Dockerfile) -> list[str]:
    problems = []
    if len(df.stages) < 2:
        problems.append("not multi-stage: build tools would end up in the image")
    if df.stage(df.final.base) is not None:
        problems.append(
            f"the final stage is built FROM stage {df.final.base!r} and inherits its tools"
        )
    return problems


def check_base_images(df: Dockerfile, python: str) -> list[str]:
    problems = []
    for stage in df.stages:
        if df.stage(stage.base) is not None:
            continue
        repo, _, tag = stage.base.partition(":")
        if "@" in stage.base:
            problems.append(f"stage {stage.index}: pin a tag, not a digest, in {stage.base}")
        if repo.removeprefix("docker.io/library/") != "python" or not tag:
            problems.append(
                f"stage {stage.index}: base {stage.base!r} is not a tagged python image"
            )
            continue
        if "slim" not in tag:
            problems.append(f"stage {stage.index}: base {stage.base!r} is not a slim image")
        if not tag.startswith(python + "-"):
            problems.append(f"stage {stage.index}: base {stage.base!r} is not Python {python}")
    return problems


def check_user(df: Dockerfile) -> list[str]:
    users = df.final.all("USER")
    if not users:
        return ["the final stage has no USER: the container would run as root"]
    value = users[-1].args[0] if users[-1].args else ""
    m = re.fullmatch(r"(\d+)(?::(\d+))?", value)
    if m is None:
        return [f"USER {value!r} is not numeric (runAsNonRoot cannot verify a name)"]
    if int(m.group(1)) == 0 or (m.group(2) is not None and int(m.group(2)) == 0):
        return [f"USER {value} is root"]
    return []


def check_no_compilers(df: Dockerfile) -> list[str]:
    problems = []
    for ins in df.final.all("RUN"):
        command = " ".join(ins.args)
        for part in re.split(r"&&|;|\|\|", command):
            if _INSTALLERS.search(part) and COMPILERS.search(part):
                problems.append(
                    f"line {ins.line}: installs a compiler in the final stage: {part!r}"
                )
    return problems


def check_entrypoint(df: Dockerfile, scripts: dict[str, str]) -> list[str]:
    entrypoints = df.final.all("ENTRYPOINT")
    if not entrypoints:
        return ["the final stage has no ENTRYPOINT"]
    ep = entrypoints[-1]
    if not ep.exec_form:
        return [
            f"line {ep.line}: ENTRYPOINT in shell form: signals would go to /bin/sh, not Python"
        ]
    if not ep.args or ep.args[0] not in scripts:
        return [f"line {ep.line}: ENTRYPOINT {ep.args} is no [project.scripts] console script"]
    return []


def wheel_sources(df: Dockerfile) -> list[str]:
    """The folders that ``pip wheel ... --wheel-dir DIR A B`` builds wheels from, in order."""
    sources: list[str] = []
    for stage in df.stages:
        for ins in stage.all("RUN"):
            for part in re.split(r"&&|;", " ".join(ins.args)):
                words = part.split()
                if "pip" not in " ".join(words) or "wheel" not in words:
                    continue
                args = words[words.index("wheel") + 1 :]
                skip = False
                for word in args:
                    if skip:
                        skip = False
                    elif word in {"--wheel-dir", "-w"}:
                        skip = True
                    elif not word.startswith("-"):
                        # pip needs "./name" to read a bare folder name as a path.
                        sources.append(word.removeprefix("./"))
    return sources


def check_env(df: Dockerfile, required: dict[str, str]) -> list[str]:
    env: dict[str, str] = {}
    for ins in df.final.all("ENV"):
        if ins.args and all("=" in a for a in ins.args):
            for assignment in ins.args:
                key, _, value = assignment.partition("=")
                env[key] = value
        elif len(ins.args) >= 2:
            env[ins.args[0]] = " ".join(ins.args[1:])
    return [f"the final stage does not set {k}={v}" for k, v in required.items() if env.get(k) != v]


def labels(df: Dockerfile) -> dict[str, str]:
    out: dict[str, str] = {}
    for ins in df.final.all("LABEL"):
        for assignment in ins.args:
            key, sep, value = assignment.partition("=")
            if sep:
                out[key] = value
    return out
