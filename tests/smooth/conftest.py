"""Fixtures of the temporal smoother tests; frame helpers live in smooth_frames.py."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
