"""Shared test helpers.

Real weights, photos and golden logits live in the read-only ``shared`` folder beside the checkout
(never in this repository). ``TINYNET_SHARED`` overrides its location; tests that need it skip,
saying why, when it is absent.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TINYNET_SHARED", REPO.parent / "shared"))


def shared_path(*parts):
    """Path of a file under the shared test-data folder; skips the calling test when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared test data not found at {path} (set TINYNET_SHARED to the shared folder)")
    return path


def run_cli(*args, home=None, env=None):
    """``python -m tinynet ARGS`` in a new process, as a user runs it, from the checkout directory: the CompletedProcess.

    ``home`` becomes TINYNET_HOME; progress bars are off and a TINYNET_MODEL of the caller's environment is
    dropped, so that the defaults are the ones under test; ``env`` adds or overrides variables.
    """
    environment = {**os.environ, "TINYNET_PROGRESS": "0"}
    environment.pop("TINYNET_MODEL", None)
    if home is not None:
        environment["TINYNET_HOME"] = str(home)
    environment.update(env or {})
    return subprocess.run([sys.executable, "-m", "tinynet", *map(str, args)], capture_output=True, text=True,
                          cwd=REPO, env=environment, timeout=300)
