"""RVSL Stage 1: supervised training on synthetic clear/hazy pairs.

python RVSL/stage1_trainer.py -c configs/FVRID.yml MODE.STAGE STAGE1 MODEL.PRETRAIN_PATH P OUTPUT_DIR O
"""

import sys

from rvsl.engine import launch, train_stage

if __name__ == "__main__":
    sys.exit(launch(train_stage, __doc__, stage="STAGE1"))
