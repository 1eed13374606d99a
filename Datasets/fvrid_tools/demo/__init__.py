"""The procedural demo dataset in the exact FVRID layout (folders, names and haze model as in Datasets/README.md).

Every identity is a distinct vehicle drawn with OpenCV (type, proportions, colours, windows, wheels,
markings, roof rack) and seen by several cameras, each with its own background, viewpoint and light.

* synthetic domain: crisp renders and their hazy twins made with the atmospheric scattering model
  (``rvsl.haze.synthesize``, per-image depth, A ~ U[0.4, 1.0], beta ~ U[1.0, 5.0]);
* real clear domain: other vehicles, rendered in a "real camera" style (colour cast, blur, sensor
  noise, lower JPEG quality);
* real hazy domain: yet other vehicles, same real style, with haze the synthetic model does not make:
  spatially varying density, tinted and uneven airlight, depth-dependent scattering blur, contrast loss.

Modules: :mod:`.plan` (sources, seeds, which image goes where), :mod:`.vehicles` and :mod:`.drawing`
(identities and their textures), :mod:`.scenes` (cameras, backgrounds, the clean image and its
depth), :mod:`.style` (haze and camera style, encoding), :mod:`.write` (output rules and the render
loop), :mod:`.figure` (the sample grid). The same seed gives byte-identical files.
"""

from .figure import make_figure
from .plan import DEFAULT_SEED, DEFAULT_SIZE, SOURCES, Job, Source, build_plan, plan_identity
from .scenes import render_clear
from .style import render_job, syn_haze_params
from .write import DEMO_NAME, MARKER, generate, log_summary, prepare_out

__all__ = ["make_figure", "DEFAULT_SEED", "DEFAULT_SIZE", "SOURCES", "Job", "Source", "build_plan",
           "plan_identity", "render_clear", "render_job", "syn_haze_params", "DEMO_NAME", "MARKER", "generate",
           "log_summary", "prepare_out"]
