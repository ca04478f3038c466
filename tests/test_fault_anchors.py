"""The fault-injection benchmark's faults (benchmarks/fault_injection.py) stay plantable: each
anchor occurs exactly once in its file and each fault changes one line. A refactor that moves
an anchor fails here, not only when ``make faults`` runs."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# the benchmark is a repository tool, not part of the package: loaded from its file
_FILE = Path(__file__).resolve().parents[1] / "benchmarks" / "fault_injection.py"
_SPEC = importlib.util.spec_from_file_location("fault_injection", _FILE)
fi = sys.modules.setdefault("fault_injection", importlib.util.module_from_spec(_SPEC))
_SPEC.loader.exec_module(fi)  # registered first: its dataclasses look their module up


@pytest.mark.parametrize("fault", fi.FAULTS, ids=lambda f: f.id)
def test_fault_anchor_occurs_once(fault):
    assert fi.anchor_problem(fi.ROOT, fault) is None, fi.anchor_problem(fi.ROOT, fault)


def test_anchor_problem_names_a_stale_anchor(tmp_path):
    f = fi.FAULTS[0]
    (tmp_path / f.file).parent.mkdir(parents=True)
    (tmp_path / f.file).write_text("nothing here\n")
    assert "occurs 0 times" in fi.anchor_problem(tmp_path, f)
