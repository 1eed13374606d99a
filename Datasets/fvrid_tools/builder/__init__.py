"""Build the FVRID layout from VeRi-Wild / Vehicle-1M images and an index CSV, rendering synthetic haze.

:mod:`.index` reads the index, :mod:`.plan` checks every row and plans the outputs, :mod:`.run`
writes them (resumable), :mod:`.manifest` records what was written.
"""

from .index import INDEX_COLUMNS, IndexRow, read_index
from .manifest import MANIFEST_COLUMNS, MANIFEST_NAME, SETTINGS_NAME, write_manifest
from .plan import GROUND_PLANE, VEHICLE1M, VERIWILD, Task, find_depth_file, plan_build, save_folder
from .run import BuildResult, Settings, build_fvrid, haze_params, render_hazy, run_task

__all__ = ["INDEX_COLUMNS", "IndexRow", "read_index", "MANIFEST_COLUMNS", "MANIFEST_NAME", "SETTINGS_NAME",
           "write_manifest", "GROUND_PLANE", "VEHICLE1M", "VERIWILD", "Task", "find_depth_file", "plan_build",
           "save_folder", "BuildResult", "Settings", "build_fvrid", "haze_params", "render_hazy", "run_task"]
