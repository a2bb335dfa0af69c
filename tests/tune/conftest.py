"""Fixtures for the tuning tests (helpers: tuning_helpers.py)."""

from __future__ import annotations

import pytest

from dlc.target import host_target, target_key
from dlc.tune.database import TuningDatabase


@pytest.fixture
def host_key() -> str:
    return target_key(host_target())


@pytest.fixture
def db(tmp_path, host_key) -> TuningDatabase:
    return TuningDatabase(tmp_path / host_key, host_key)
