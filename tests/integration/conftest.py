"""Helpers for the tests that drive the real host (the host fixture itself lives in tests/conftest.py)."""

import json

from paths import ROOT


def load_workflow(name: str) -> tuple[dict, dict]:
    """(api, ui) of an example workflow."""
    api = json.loads((ROOT / "workflows" / "api" / f"{name}.json").read_text())
    ui = json.loads((ROOT / "workflows" / f"{name}.json").read_text())
    return api, ui
