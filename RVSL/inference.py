"""RVSL evaluation of one checkpoint on one test set (SYN, REAL_CLEAR or REAL_FOGGY).

python RVSL/inference.py -t -c configs/FVRID.yml TEST.DATA REAL_FOGGY TEST.WEIGHT W OUTPUT_DIR O
"""

import sys

from rvsl.engine import launch
from rvsl.engine.inference import add_test_flag, run_inference

if __name__ == "__main__":
    sys.exit(launch(run_inference, __doc__, add_arguments=add_test_flag))
