"""Dehazed images (G_C) of every image of a folder, under the same names, with an optional side-by-side sheet.

python RVSL/dehaze.py --weight W --input DIR --output OUT [--sheet FILE] [KEY VALUE ...]
"""

import sys

from rvsl.api.commands import dehaze_arguments, run_dehaze
from rvsl.engine import launch

if __name__ == "__main__":
    sys.exit(launch(run_dehaze, __doc__, add_arguments=dehaze_arguments))
