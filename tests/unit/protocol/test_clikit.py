"""The conventions both console scripts share: one-line errors, exit codes, the version."""

from __future__ import annotations

import importlib.util
import tomllib
from pathlib import Path

import pytest
import typer

from jobqueue_protocol import clikit


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def go(
        what: str,
        count: int = typer.Option(1, min=1),
    ) -> None:
        if what == "missing":
            raise clikit.CliError("job x not found\n(expired)", clikit.ExitCode.FAILED)
        if what == "redis":
            raise ConnectionRefusedError("refused")
        if what == "bug":
            raise KeyError("oops")
        if what == "exit":
            raise typer.Exit(7)

    return app


def _classify(exc: BaseException) -> clikit.CliError | None:
    if isinstance(exc, ConnectionRefusedError):
        return clikit.CliError("cannot reach Redis at x", clikit.ExitCode.UNREACHABLE)
    return None


@pytest.mark.parametrize(
    ("argv", "code", "line"),
    [
        (["ok"], 0, None),
        (["exit"], 7, None),
        (["missing"], 1, "prog: error: job x not found; (expired)"),
        (["redis"], 3, "prog: error: cannot reach Redis at x"),
        (["bug"], 1, "prog: error: unexpected KeyError: 'oops' (run with --debug for the "),
        (["ok", "--count", "0"], 2, "prog: error: Invalid value for '--count': "),
        (["ok", "--nope"], 2, "prog: error: No such option: --nope"),
        ([], 2, "prog: error: Missing argument 'what'."),
    ],
)  # fmt: skip
def test_every_outcome_is_an_exit_code_and_at_most_one_line(
    argv: list[str], code: int, line: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        clikit.run(_app(), "prog", argv=argv, classify=_classify)
    assert done.value.code == code
    err = capsys.readouterr().err
    if line is None:
        assert err == ""
    else:
        assert len(err.splitlines()) == 1, err
        assert err.startswith(line), err


def test_one_line() -> None:
    assert clikit.one_line("a\n\n  b  \nc") == "a; b; c"
    assert clikit.one_line("") == "unknown error"


def test_version_of_the_installed_package_and_of_none() -> None:
    """The version is the one declared by the pyproject.toml that builds the package."""
    assert clikit.package_version("jobqueue_protocol") == _declared_version("jobqueue_protocol")
    assert clikit.package_version("jobqueue_worker") == _declared_version("jobqueue_worker")
    assert clikit.package_version("no_such_package_here").startswith("unknown")


def _declared_version(package: str) -> str:
    """From the nearest pyproject.toml above the package's folder (whatever the project's name)."""
    spec = importlib.util.find_spec(package)
    assert spec is not None
    assert spec.origin is not None
    for folder in Path(spec.origin).resolve().parents:
        if (folder / "pyproject.toml").is_file():
            data = tomllib.loads((folder / "pyproject.toml").read_text())
            return str(data["project"]["version"])
    raise AssertionError(f"no pyproject.toml above {spec.origin}")
