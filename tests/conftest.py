"""Shared fixtures: prepared presets are built once per test session (quantization included)."""

import functools
import os

import pytest

from edgevit_hw.core.spec import load_spec
from edgevit_hw.flow import prepare

SEED = int(os.environ.get("EDGEVIT_SEED", "20261122"))


@functools.cache
def prepared(name: str):
    return prepare(load_spec(name))


@pytest.fixture(scope="session")
def micro():
    return prepared("micro_moe")


@pytest.fixture(scope="session")
def seed():
    print(f"seed={SEED}")
    return SEED
