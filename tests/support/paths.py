"""Where the tests find the repo and the shared reference data (``../shared`` beside the repo)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
GOLDEN = SHARED / "golden"
SUPPORT = ROOT / "tests" / "support"  # tiny models and scripts that run inside a ComfyUI process
