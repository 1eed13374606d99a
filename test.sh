#!/usr/bin/env bash
# Evaluate one checkpoint on the three FVRID test sets and print one combined table.
# usage: bash test.sh WEIGHT [OUTPUT_ROOT] [KEY VALUE ...]       (bash test.sh --help prints this)
# Variables: CONFIG (configs/FVRID.yml), DATA_PATH (Datasets), PYTHON (./.venv/bin/python when it exists,
# else python from PATH).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/RVSL/scripts.sh"
usage_if_asked "$0" "${1:-}"

WEIGHT=${1:?usage: bash test.sh WEIGHT [OUTPUT_ROOT] [KEY VALUE ...]}
OUTPUT_ROOT=${2:-output/test}
shift $(( $# < 2 ? $# : 2 ))
CONFIG=${CONFIG:-configs/FVRID.yml}
DATA_PATH=${DATA_PATH:-Datasets}
find_python                                # PYTHON: ./.venv/bin/python when unset and present

for data in SYN REAL_CLEAR REAL_FOGGY; do
    "$PYTHON" RVSL/inference.py -t -c "$CONFIG" DATASETS.DATA_PATH "$DATA_PATH" TEST.DATA $data \
        TEST.WEIGHT "$WEIGHT" OUTPUT_DIR "$OUTPUT_ROOT/$data" "$@"
done
"$PYTHON" -c 'import sys; from rvsl.engine.report import metrics_table; print(metrics_table(sys.argv[1:]))' \
    "$OUTPUT_ROOT"/{SYN,REAL_CLEAR,REAL_FOGGY}/metrics.json
