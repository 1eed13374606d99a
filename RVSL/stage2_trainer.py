"""RVSL Stage 2: unsupervised adaptation to real clear images.

python RVSL/stage2_trainer.py -c configs/FVRID.yml MODE.STAGE STAGE2 MODEL.PRETRAIN_PATH P OUTPUT_DIR O
"""

import sys

from rvsl.engine import launch, train_stage

if __name__ == "__main__":
    sys.exit(launch(train_stage, __doc__, stage="STAGE2"))
