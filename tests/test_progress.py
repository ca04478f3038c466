"""Spinners: nothing at all when stderr is not a terminal; on a terminal, only stderr, with a
line per finished step and nested steps sharing one spinner."""

import pytest
from rich.console import Console

from edgevit_hw import progress
from edgevit_hw.progress import step


def _terminal(stderr: bool) -> Console:
    return Console(stderr=stderr, force_terminal=True, color_system=None, width=100)


def test_silent_when_not_a_terminal(capsys):
    with step("outer"), step("inner") as s:
        s.update("inner, part 2")
    assert capsys.readouterr() == ("", "")


def test_terminal_spinner_goes_to_stderr_only(capsys, monkeypatch):
    monkeypatch.setattr(progress, "Console", _terminal)
    with step("calibrating"):
        with step("task 1") as s:
            s.update("task 1 of 2")
    out, err = capsys.readouterr()
    assert out == ""
    assert "✓ task 1 (" in err and "✓ calibrating (" in err
    assert not progress._live and not progress._texts


def test_failed_step_leaves_no_spinner_and_no_tick(capsys, monkeypatch):
    monkeypatch.setattr(progress, "Console", _terminal)
    with pytest.raises(RuntimeError), step("compiling"):
        raise RuntimeError("g++ failed")
    assert "✓" not in capsys.readouterr().err
    assert not progress._live and not progress._texts
