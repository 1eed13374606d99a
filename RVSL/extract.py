"""Features of every image of a folder: OUT/features_{clear,hazy,fused}.npy and OUT/names.txt.

python RVSL/extract.py --weight W --input DIR --output OUT [KEY VALUE ...]
"""

import sys

from rvsl.api.commands import input_output_arguments, run_extract
from rvsl.engine import launch

if __name__ == "__main__":
    sys.exit(launch(run_extract, __doc__, add_arguments=input_output_arguments))
