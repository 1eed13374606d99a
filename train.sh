#!/usr/bin/env bash
# Train the three RVSL stages in a row, each starting from the previous stage's best checkpoint.
# usage: [VAR=VALUE ...] bash train.sh [KEY VALUE ...]       (bash train.sh --help prints this)
# Variables: CONFIG (configs/FVRID.yml), DATA_PATH (Datasets), OUTPUT_ROOT (output/FVRID), IMAGENET (ImageNet
# weights for stage 1, optional), NPROC (1), TORCHRUN_ARGS (--standalone), PYTHON (./.venv/bin/python when
# it exists, else python from PATH).
# best.pth is chosen by SOLVER.BEST_METRIC, label-free by default (it never reads a real label), so the
# chain reads no real label either (choosing on the labelled test set is possible, under a name that says so).
# Each stage runs with --auto-resume: one that already has OUTPUT_ROOT/stageN/checkpoint/last.pth is
# resumed (a finished one returns at once), so rerunning this script after an interruption continues where it stopped.
# Extra arguments are config overrides for every stage, e.g.  bash train.sh SOLVER.MAX_EPOCHS 50
# NPROC=N runs each stage on N GPUs of this machine with torchrun (one process per GPU, each loading
# NUM_IDENTITIES x NUM_INSTANCES of every global batch); on several machines TORCHRUN_ARGS replaces
# --standalone, e.g. "--nnodes 2 --node_rank 0 --rdzv_backend c10d --rdzv_endpoint host0:29500 --rdzv_id rvsl".
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/RVSL/scripts.sh"
usage_if_asked "$0" "${1:-}"

CONFIG=${CONFIG:-configs/FVRID.yml}
DATA_PATH=${DATA_PATH:-Datasets}           # folder holding FVRID_syn, FVRID_clear, FVRID_real
OUTPUT_ROOT=${OUTPUT_ROOT:-output/FVRID}   # stage1/, stage2/, stage3/ go here
IMAGENET=${IMAGENET:-}                     # optional local ImageNet weights for stage 1
find_python                                # PYTHON: ./.venv/bin/python when unset and present
NPROC=${NPROC:-1}                          # processes (GPUs) per stage; 1: a plain python process
TORCHRUN_ARGS=${TORCHRUN_ARGS:---standalone}

launcher=("$PYTHON")
[ "$NPROC" -gt 1 ] && launcher=("$PYTHON" -m torch.distributed.run $TORCHRUN_ARGS --nproc_per_node "$NPROC")

previous=$IMAGENET
for n in 1 2 3; do
    out=$OUTPUT_ROOT/stage$n
    "${launcher[@]}" RVSL/stage${n}_trainer.py -c "$CONFIG" --auto-resume \
        DATASETS.DATA_PATH "$DATA_PATH" MODEL.PRETRAIN_PATH "$previous" OUTPUT_DIR "$out" "$@"
    previous=$out/checkpoint/best.pth
done
