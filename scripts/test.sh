#!/usr/bin/env bash
# Set up everything on a fresh machine and run the test suite.
#   bash scripts/test.sh [pytest args...]
# Creates .venv-test (its own environment, reused when present; the README's .venv
# stays as its first command made it), installs the package with its [train],
# [tensorrt-rtx], [openvino] and [dev] extras (torch pinned to the CPU build 2.13.0), installs
# ffmpeg for the live-stream tests' RTSP server, then runs ruff and pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v ffmpeg >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg >/dev/null
  else
    echo "note: ffmpeg not found; the live-stream tests will be skipped" >&2
  fi
fi

PY=${PYTHON:-python3}
VENV=${VENV:-.venv-test}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
# a pinned CPU torch first, so nothing later pulls a multi-GB CUDA build
python -m pip install -q "torch==2.13.0"
python -m pip install -q -e ".[train,tensorrt-rtx,openvino,ray,dev]"

ruff check .
set +e
python -m pytest -q -ra "$@"
rc=$?
set -e
# pytest's 5 means no test ran: that is a failure here
[ "$rc" = 5 ] && { echo "no tests were collected" >&2; exit 1; }
exit "$rc"
