"""Shared test helpers.

Real weights, photos and golden logits live in the read-only ``shared`` folder beside the checkout
(never in this repository). ``TINYNET_SHARED`` overrides its location; tests that need it skip,
saying why, when it is absent.
"""
import os
from pathlib import Path

import pytest

SHARED = Path(os.environ.get("TINYNET_SHARED", Path(__file__).resolve().parents[2] / "shared"))


def shared_path(*parts):
    """Path of a file under the shared test-data folder; skips the calling test when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (set TINYNET_SHARED to the shared folder)")
    return path
