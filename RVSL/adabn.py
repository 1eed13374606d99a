"""AdaBN, the label-free baseline: re-estimate the hazy branch's BatchNorm statistics of a checkpoint on the
unlabelled real hazy training images (no label, no gradient); writes OUTPUT_DIR/adabn.pth.

python RVSL/adabn.py -c configs/FVRID.yml TEST.WEIGHT output/FVRID/stage1/checkpoint/best.pth OUTPUT_DIR O
"""

import sys

from rvsl.engine import launch
from rvsl.engine.adabn import run_adabn

if __name__ == "__main__":
    sys.exit(launch(run_adabn, __doc__))
