#!/usr/bin/env bash
# Every check that needs a GPU, in one go: the CUDA tests (pytest -m cuda), training and feature-extraction
# speed and peak memory at the published setting (train_speed.py), and the ranking at VeRi-Wild large size
# on the GPU (eval_speed.py). Logs and JSON go to $OUT (default output/gpu_checks).
#   bash benchmarks/gpu_checks.sh            # PYTHON=... to choose the interpreter
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=${OUT:-output/gpu_checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/device.txt"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/device.txt"
"$PYTHON" -m pytest -m cuda -q -p no:cacheprovider 2>&1 | tee "$OUT/cuda_tests.txt" || status=1
"$PYTHON" benchmarks/train_speed.py --json "$OUT/train_speed.json" 2>&1 | tee "$OUT/train_speed.txt" || status=1
"$PYTHON" benchmarks/eval_speed.py --sizes large --device cuda 2>&1 | tee "$OUT/eval_speed.txt" || status=1
# torch.compile last: compiling takes minutes; its time is left out of the figures.
timeout "${COMPILE_TIMEOUT:-150}" "$PYTHON" benchmarks/train_speed.py --stages STAGE1 --settings ours-compile \
    --no-extract --json "$OUT/train_speed_compile.json" 2>&1 | tee "$OUT/train_speed_compile.txt" || status=1
exit $status
