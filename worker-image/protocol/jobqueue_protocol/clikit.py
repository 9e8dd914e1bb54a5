"""What both console scripts (``jobqueue`` and ``jobqueue-operator``) share.

Scripts and CronJobs read the exit code and people read one line: every failure
ends here as exactly one line on stderr (``<prog>: error: <what>``) and a
documented exit code (``docs/cli.md``). A traceback is printed only with
``--debug`` (or ``JOBQUEUE_DEBUG=1``), so a bug stays diagnosable without
drowning the message.

The version comes from the installed distribution that holds the calling
package, found through the package name (``packages_distributions``, or the
console script's entry point for editable installs) rather than a hard-coded
distribution name, so renaming or splitting the distribution needs no change.
"""

from __future__ import annotations

import enum
import importlib.metadata
import importlib.util
import json
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, NoReturn
from urllib.parse import unquote, urlsplit

import typer
import typer.main


class ExitCode(enum.IntEnum):
    """The exit codes of both scripts (``jobqueue health`` adds its own verdicts)."""

    OK = 0
    FAILED = 1  # the operation ran and did not succeed: not found, partial, internal error
    USAGE = 2  # bad option, argument, input file or configuration; nothing was done
    UNREACHABLE = 3  # Redis (or the API server) could not be reached or refused the login
    INTERRUPTED = 130  # Ctrl-C, as shells report SIGINT


class CliError(Exception):
    """A failure the user can act on: ``message`` is the whole story, on one line."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


Classifier = Callable[[BaseException], CliError | None]

_DEBUG_ENV = "JOBQUEUE_DEBUG"
_debug = [os.environ.get(_DEBUG_ENV, "") not in ("", "0", "false")]


def set_debug(on: bool) -> None:
    """``--debug``: print the traceback under the one-line error."""
    _debug[0] = _debug[0] or on


def one_line(text: str) -> str:
    """Collapse a multi-line message (a pydantic dump, a click usage error) to one line."""
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    return "; ".join(parts) or "unknown error"


def fail(prog: str, message: str, code: ExitCode) -> NoReturn:
    """Print ``<prog>: error: <message>`` on stderr and exit with ``code``."""
    sys.stderr.write(f"{prog}: error: {one_line(message)}\n")
    sys.stderr.flush()
    raise SystemExit(int(code))


def package_version(package: str) -> str:
    """The version of the installed distribution that holds ``package``.

    ``packages_distributions`` maps top-level packages to distributions for a
    normal install. An editable install lists no package files, so the fallback
    is the editable distribution whose source folder holds the package (the
    deepest one, should a folder hold several).
    """
    for dist in importlib.metadata.packages_distributions().get(package, []):
        return importlib.metadata.version(dist)
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return "unknown (not installed)"
    origin = Path(spec.origin).resolve()
    best: tuple[int, str] | None = None
    for candidate in importlib.metadata.distributions():
        root = _editable_root(candidate)
        if root is not None and root in origin.parents:
            depth = len(root.parts)
            if best is None or depth > best[0]:
                best = (depth, candidate.version)
    return best[1] if best is not None else "unknown (not installed)"


def _editable_root(dist: importlib.metadata.Distribution) -> Path | None:
    raw = dist.read_text("direct_url.json")
    if not raw:
        return None
    try:
        info = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(info, dict) or not (info.get("dir_info") or {}).get("editable"):
        return None
    url = urlsplit(str(info.get("url", "")))
    return Path(unquote(url.path)).resolve() if url.scheme == "file" else None


def version_option(prog: str, package: str) -> Callable[[bool], None]:
    """The callback of an eager ``--version`` flag: print ``<prog> <version>`` and exit."""

    def show(value: bool) -> None:
        if value:
            typer.echo(f"{prog} {package_version(package)}")
            raise typer.Exit(0)

    return show


def version_flag(prog: str, package: str) -> Any:
    """The ``--version`` option of a command line, for ``Annotated[bool, ...]``."""
    return typer.Option(
        "--version",
        is_eager=True,
        callback=version_option(prog, package),
        help="print the version and exit",
    )


#: ``--debug``: tracebacks instead of one-line errors, the same on both command lines.
DebugFlag = Annotated[
    bool, typer.Option("--debug", envvar="JOBQUEUE_DEBUG", help="print tracebacks of failures")
]


def _command_path(exc: typer.TyperException, prog: str) -> str:
    """``jobqueue dlq purge`` when typer knows the command, else the script's name."""
    ctx = getattr(exc, "ctx", None)
    return str(getattr(ctx, "command_path", "") or prog)


def run(
    app: typer.Typer,
    prog: str,
    *,
    argv: Sequence[str] | None = None,
    classify: Classifier | None = None,
) -> NoReturn:
    """Run ``app`` and turn every outcome into an exit code (never a bare traceback)."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        command = typer.main.get_command(app)
        result = command.main(args, prog_name=prog, standalone_mode=False)
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except (typer.Abort, KeyboardInterrupt):
        fail(prog, "interrupted", ExitCode.INTERRUPTED)
    except CliError as exc:
        _maybe_traceback()
        fail(prog, exc.message, exc.code)
    except typer.TyperException as exc:  # typer's usage errors: bad option, argument, file
        _maybe_traceback()
        fail(_command_path(exc, prog), exc.format_message(), ExitCode.USAGE)
    except SystemExit:
        raise
    except Exception as exc:
        _maybe_traceback()
        known = classify(exc) if classify is not None else None
        if known is not None:
            fail(prog, known.message, known.code)
        hint = "" if _debug[0] else " (run with --debug for the traceback)"
        fail(prog, f"unexpected {type(exc).__name__}: {exc}{hint}", ExitCode.FAILED)
    raise SystemExit(result if isinstance(result, int) else 0)


def _maybe_traceback() -> None:
    if _debug[0]:
        traceback.print_exc(file=sys.stderr)
