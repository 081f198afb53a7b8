"""emo_core must import and run without ComfyUI: a subprocess where the host's modules cannot be imported."""

import subprocess
import sys

from paths import ROOT

BLOCKED = ("comfy", "folder_paths", "comfy_api", "comfy_extras", "nodes", "server", "execution")

GUARD = f"""
import importlib, importlib.abc, pkgutil, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ImportError("emo_core reached for the host module " + name)
        return None

sys.meta_path.insert(0, Block())
import emo_core
for info in pkgutil.walk_packages(emo_core.__path__, "emo_core."):
    if not info.name.endswith("__main__"):
        importlib.import_module(info.name)
print("imported", len([m for m in sys.modules if m.startswith("emo_core")]))
"""


def test_emo_core_imports_without_comfyui():
    run = subprocess.run([sys.executable, "-c", GUARD], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert int(run.stdout.split()[-1]) >= 20, run.stdout  # every module was reached, not just the package


def test_the_guard_catches_a_host_import():
    leaky = GUARD.replace("import emo_core\n", "import emo_core\nimport folder_paths\n")
    run = subprocess.run([sys.executable, "-c", leaky], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "folder_paths" in run.stderr
