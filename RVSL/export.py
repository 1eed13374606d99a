"""ONNX export: OUT/reid_hazy.onnx, reid_clear.onnx, reid_fused.onnx (features) and dehaze.onnx (G_C).

python RVSL/export.py --weight W --output OUT [KEY VALUE ...]
"""

import sys

from rvsl.api.export import export_arguments, run_export
from rvsl.engine import launch

if __name__ == "__main__":
    sys.exit(launch(run_export, __doc__, add_arguments=export_arguments))
