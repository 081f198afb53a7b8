"""Fixtures for every test folder: the golden data, and one real ComfyUI host per session (started only when a test
asks for it) with emo-nodes and the tiny test models loaded."""

from pathlib import Path

import pytest
from comfy_host import ComfyHost, ensure_tiny_models
from editor_pairs_synth import write_tiny_emopair
from paths import GOLDEN
from tiny_graph import TINY_PAIRS, write_tiny_pairs


@pytest.fixture(scope="session")
def golden() -> Path:
    """The golden reference folder; CI always has it, so its absence is an error, not a skip."""
    assert GOLDEN.is_dir(), f"golden reference data not found at {GOLDEN} (expected ../shared/golden)"
    return GOLDEN


@pytest.fixture(scope="session")
def host():
    ensure_tiny_models()
    with ComfyHost(test_nodes=True) as h:  # plus the test-only nodes (tests/support/test_nodes)
        write_tiny_pairs(h.base / "input" / TINY_PAIRS)
        write_tiny_emopair(h.base / "input")  # the EmoEditor Training Pairs node's default dataset
        yield h


@pytest.fixture(scope="session")
def object_info(host) -> dict:
    return host.get("/object_info")
