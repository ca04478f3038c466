"""Spinners on stderr for the steps that take more than a few seconds.

Calibration, quantization, compiling the C-simulation, exporting the RTL and simulating each
run inside :func:`step`. On a terminal a rich spinner says what is running (nested steps as
``outer › inner``) and a line with the step's duration stays when it ends. When stderr is not a
terminal (pipes, CI logs, tests) nothing at all is printed, and stdout is never used, so the
commands' output stays parseable.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.status import Status

_texts: list[str] = []  # the running steps, outermost first
_live: list[Status] = []  # the one spinner on screen while any step runs on a terminal


class Step:
    """Handle of a running step: :meth:`update` replaces its text (e.g. ``task 2 of 3``)."""

    def __init__(self, level: int):
        self.level = level

    def update(self, text: str) -> None:
        _texts[self.level] = text
        _show()


@contextmanager
def step(text: str) -> Iterator[Step]:
    """Show a spinner with ``text`` on stderr while the block runs."""
    t0 = time.perf_counter()
    _texts.append(text)
    _show()
    handle = Step(len(_texts) - 1)
    try:
        yield handle
        _done(text, time.perf_counter() - t0)
    finally:
        _texts.pop()
        _show()


def _show() -> None:
    if not _texts:
        if _live:
            _live.pop().stop()
        return
    text = escape(" › ".join(_texts))
    if _live:
        _live[0].update(text)
        return
    console = Console(stderr=True)
    if console.is_terminal:
        _live.append(console.status(text))
        _live[0].start()


def _done(text: str, seconds: float) -> None:
    if _live:
        _live[0].console.print(
            f"[green]✓[/] {escape(text)} [dim]({seconds:.1f} s)[/]", highlight=False
        )
