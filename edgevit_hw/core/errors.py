"""User-facing errors: each carries one line that names the field and what it must be.

Every command line reports them the same way: ``error: <message>`` on one line of stderr and
exit status 2, never a traceback (:func:`run_cli`, :class:`CliParser`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable


class EdgeVitError(Exception):
    """Base class; the CLI prints ``str(err)`` on one line and exits with status 2."""


class SpecError(EdgeVitError):
    """The YAML spec is malformed or impossible."""


class WeightsError(EdgeVitError):
    """A weights file does not match the spec."""


class InputError(EdgeVitError):
    """A command-line input (image, calibration set, output folder, task) is unusable."""


class CliParser(argparse.ArgumentParser):
    """``argparse`` whose usage errors raise :class:`InputError` (so :func:`run_cli` prints
    them on one line, ``error: <prog>: <message>``, with exit status 2)."""

    def error(self, message: str):
        raise InputError(f"{self.prog}: {message} (see --help)")


def run_cli(run: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
            argv: list[str] | None, tool_failures: bool = False) -> int:  # fmt: skip
    """``run(parser.parse_args(argv))``; an :class:`EdgeVitError` (a usage error included) or
    an OS error (a file that cannot be read or written) becomes one line on stderr and exit
    status 2. With ``tool_failures``, a ``RuntimeError`` (a compiler or simulator that failed
    on good input) prints its message and exits 1."""
    try:
        return run(parser.parse_args(argv))
    except EdgeVitError as err:
        return _fail(str(err))
    except OSError as err:
        return _fail(f"{err.strerror or err}: {err.filename!r}" if err.filename else str(err))
    except RuntimeError as err:
        if not tool_failures:
            raise
        return _fail(str(err), status=1, one_line=False)


def _fail(message: str, status: int = 2, one_line: bool = True) -> int:
    print(f"error: {' '.join(message.split()) if one_line else message}", file=sys.stderr)
    return status
