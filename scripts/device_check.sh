#!/usr/bin/env bash
# The GPU check of issue 29 (point 5), one command for an NVIDIA machine with torch and
# CUDA but no TensorRT, no PyAV and no network:
#
#   bash scripts/device_check.sh [--cpu-dry-run] [--model NAME] [--budget-s S] ...
#
# Runs scripts/device_check.py (torch backend engine fps at 720p and 1080p in fp16, bf16
# and fp32; the network alone on device tensors; the GPU smoother; the end-to-end
# pipeline with frames kept on the device, fed from memory) and writes to $OUT
# (default runs/device_check): device_check.json (the report), device_check.log and
# nvidia-smi.txt. Nothing to carry: the shipped model is tracked in engines/.
# The check starts no section after 390 s and is killed at 470 s (under 8 minutes);
# the JSON is rewritten after each section, so a killed run still leaves its numbers.
# --cpu-dry-run: the same code on the CPU at a tiny size (what the tests run).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
OUT=${OUT:-runs/device_check}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi >"$OUT/nvidia-smi.txt" 2>&1 || true  # a read-only query: the card as found
fi
exec timeout -k 10 470 "$PYTHON" scripts/device_check.py --out "$OUT" "$@"
