"""How ``ser`` fails: one line on stderr with the reason and a documented exit code.

Exit codes of every ``ser`` command:

* 0: success.
* 1: the command's input is bad (``ser predict`` on a recording that cannot be
  analysed, ``ser report`` on a directory that is not an output root); ``ser analyze``:
  the run committed but some inputs failed (see ``OUT/errors``).
* 2: usage or configuration error (bad option, YAML, model, run id, missing input).
* 3: ``ser analyze``: the run committed, but the analysis of some recordings met an
  unexpected error (a bug, not bad input): counted as ``internal`` in the run summary,
  logged with its traceback, its row in ``OUT/errors`` reads ``internal: ...``.
* 70: internal error (a bug or an environment problem: ``-v`` prints the traceback).
* 75: temporary failure: another run holds the output root's lock (``EX_TEMPFAIL``,
  so a scheduler retries; ``ser analyze --wait SECONDS`` queues instead).

Tracebacks are printed only with ``ser -v``.
"""
from __future__ import annotations

import os
import sys
import traceback
from contextlib import contextmanager

import click

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_TEMPFAIL = 0, 1, 2, 70, 75


class CliError(click.ClickException):
    """A command's error: ``message`` printed as one line, then exit with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED):
        super().__init__(message)
        self.exit_code = exit_code


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces folded into single spaces."""
    return " ".join(str(text).split())


def classify(err: BaseException) -> tuple[int, str]:
    """``(exit code, message)`` of an exception that reached the command line."""
    from jobs.commit import LockBusy
    from ser_lib.errors import ArtifactError, ConfigError, SERError
    if isinstance(err, LockBusy):
        return EXIT_TEMPFAIL, str(err)
    if isinstance(err, (ConfigError, ArtifactError)):
        return EXIT_USAGE, f"configuration error: {err}"
    if isinstance(err, SERError):
        return EXIT_FAILED, str(err)
    if isinstance(err, OSError):
        text = f"{err.filename}: {err.strerror}" if err.filename and err.strerror else str(err)
        return EXIT_FAILED, text
    return EXIT_INTERNAL, f"internal error: {type(err).__name__}: {err} (ser -v prints the traceback)"


class OneLineErrors(click.Group):
    """A click group whose commands never end in a traceback (unless ``verbose``).

    Usage errors, :class:`CliError` and any other exception are reported as
    ``<command>: error: <reason>`` on stderr with an exit code from :func:`classify`.
    The group's callback sets ``show_traceback`` (``-v``) and ``where`` (``ser <sub>``).
    """

    show_traceback = False
    where = "ser"

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        OneLineErrors.show_traceback, OneLineErrors.where = False, self.name or "ser"
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as err:  # bare `ser`: the help
            err.show()
            sys.exit(err.exit_code)
        except click.UsageError as err:
            where = err.ctx.command_path if err.ctx is not None else OneLineErrors.where
            self._fail(f"{err.format_message()} (see '{where} --help')", err.exit_code, where)
        except click.ClickException as err:
            self._fail(err.format_message(), err.exit_code)
        except (click.Abort, KeyboardInterrupt, EOFError):
            self._fail("interrupted", 130)
        except Exception as err:  # noqa: BLE001 - the command line's last resort
            code, text = classify(err)
            if OneLineErrors.show_traceback:
                traceback.print_exc()
            self._fail(text, code)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)

    @staticmethod
    def _fail(text: str, code: int, where: str | None = None) -> None:
        click.echo(f"{where or OneLineErrors.where}: error: {one_line(text)}", err=True)
        sys.exit(code)


@contextmanager
def stdout_to_stderr():
    """Send everything written to stdout inside the block to stderr, at the file-descriptor
    level: Python's ``print``, native libraries, and the processes started meanwhile (Spark's
    gateway JVM and its Python workers inherit fd 1). ``--json`` wraps a run in it, so that the
    summary printed after the block is the only thing on stdout (``… --json | jq .failed``).
    """
    sys.stdout.flush()
    saved, py_stdout = os.dup(1), sys.stdout
    try:
        os.dup2(2, 1)
        sys.stdout = sys.stderr  # also when sys.stdout is not fd 1 (a test runner's capture)
        yield
    finally:
        sys.stdout.flush()
        sys.stdout = py_stdout
        os.dup2(saved, 1)
        os.close(saved)
