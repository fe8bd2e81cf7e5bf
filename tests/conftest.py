"""Test-session setup: no network, no telemetry, and one default-model conversion per machine.

The environment is set at import time, before any test module imports huggingface_hub/transformers/wandb, because
those read it when first imported. ``AZR_TRL_CACHE`` is left at its value (default ``~/.cache/azr-trl``) so the
converted default model persists across test runs instead of being rebuilt (~30 s) every session.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest


# Tests never touch the Hub or a wandb server.
os.environ["WANDB_MODE"] = "offline"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
# Resolve the cache once, so subprocesses started by tests see the same folder as this process.
os.environ.setdefault("AZR_TRL_CACHE", str(Path("~/.cache/azr-trl").expanduser()))

# `from tiny import ...` works whether or not pytest put tests/ on sys.path (rootdir/importmode settings).
_TESTS_DIR = str(Path(__file__).resolve().parent)
if _TESTS_DIR not in sys.path:
    sys.path.insert(0, _TESTS_DIR)


@pytest.fixture(scope="session")
def azr_trl_cache() -> Path:
    """The persistent azr-trl cache directory used by this session."""
    return Path(os.environ["AZR_TRL_CACHE"])


@pytest.fixture(scope="session")
def default_model_path(azr_trl_cache: Path) -> Path:
    """The converted default model folder (converted on first use on this machine, then reused)."""
    from azr_trl.offline_models import DEFAULT_MODEL_ALIAS, offline_model_path

    return offline_model_path(DEFAULT_MODEL_ALIAS, azr_trl_cache)


@pytest.fixture(scope="session")
def azr_trl_cli() -> Path:
    """The ``azr-trl`` console script of the interpreter running the tests."""
    script = Path(sys.executable).parent / "azr-trl"
    if not script.exists():
        pytest.fail(f"{script} not found: install the package (`pip install -e .[dev]`) into this environment")
    return script
