"""RVSL Stage 3: unsupervised adaptation to real hazy images.

python RVSL/stage3_trainer.py -c configs/FVRID.yml MODE.STAGE STAGE3 MODEL.PRETRAIN_PATH P OUTPUT_DIR O
"""

import sys

from rvsl.engine import launch, train_stage

if __name__ == "__main__":
    sys.exit(launch(train_stage, __doc__, stage="STAGE3"))
