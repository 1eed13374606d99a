#!/usr/bin/env bash
# Every check that needs a GPU, in one go (estimated 6.5 minutes on an H100; 8.7 at most by its time limits):
# training speed and peak memory at the published setting (configs/FVRID.yml: 384x384, 6 x 6 pairs, 18 real
# images), the reference-like setting and ours in one run, stages 1 and 3, with the activation-checkpointing
# policies and the two-pass discriminator; a profile of ours (trace, top kernels, parts); feature
# extraction, the bare model and extract.py end to end; the CUDA tests (bf16 and fp16); last, torch.compile.
# Outputs in $OUT (default output/gpu_checks), at most 8 files: log.txt (everything printed),
# train_speed.json (rewritten after every row), trace_STAGE1.json.gz, trace_STAGE3.json.gz,
# train_speed_compile.json.
#   bash benchmarks/gpu_checks.sh            # PYTHON=... to choose the interpreter
# A machine without yacs (or another pure-Python dependency) and without a network: put the wheels in .whl/
# (git-ignored), e.g. `pip download --no-deps --only-binary=:all: -d .whl yacs==0.1.8`, and carry it; they
# are installed into a private folder first. rvsl itself is taken from this checkout when not installed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
OUT=${OUT:-output/gpu_checks}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
LOG="$OUT/log.txt"
: > "$LOG"
status=0
if compgen -G ".whl/*.whl" > /dev/null; then
    SITE=${TMPDIR:-/tmp}/rvsl_site
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
        2>&1 | tee -a "$LOG" && export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
"$PYTHON" -c "import rvsl" 2>/dev/null || export PYTHONPATH="$PWD/RVSL:$PWD/Datasets${PYTHONPATH:+:$PYTHONPATH}"
run() {  # run LIMIT_S COMMAND...: log it, run it under a time limit, note a failure
    local limit=$1
    shift
    echo "== $* (limit ${limit}s, $(date -u +%H:%M:%S))" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG" || { echo "== FAILED ($?): $*" | tee -a "$LOG"; status=1; }
}
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version --format=csv 2>&1 | tee -a "$LOG"
"$PYTHON" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" 2>&1 | tee -a "$LOG"

# Training (15 timed iterations after 4 warm-up ones per setting), the profile of `ours`, extraction.
run 300 "$PYTHON" benchmarks/train_speed.py --iters 15 --warmup 4 \
    --settings reference ours ours-dsplit ours-fullres ours-genckpt ours-ckpt \
    --profile --trace-dir "$OUT" --extract-images 4096 --json "$OUT/train_speed.json"
# The CUDA tests: training steps of each stage in bf16 and in fp16, checkpointing, evaluation on the GPU.
run 120 "$PYTHON" -m pytest -m cuda -q -p no:cacheprovider tests/test_cuda.py tests/test_evaluation.py
# torch.compile last: compiling takes minutes; its time is left out of the figures.
run "${COMPILE_TIMEOUT:-100}" "$PYTHON" benchmarks/train_speed.py --iters 15 --warmup 4 --stages STAGE1 \
    --settings ours-compile --no-extract --json "$OUT/train_speed_compile.json"
echo "== done, status $status ($(date -u +%H:%M:%S))" | tee -a "$LOG"
exit $status
