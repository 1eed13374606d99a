"""Offline tooling of the FVRID dataset, outside the training library.

- :mod:`fvrid_tools.builder`: build the layout from VeRi-Wild / Vehicle-1M and an index CSV
  (``Datasets/build_fvrid.py``), with :mod:`fvrid_tools.depth` for the haze depth maps;
- :mod:`fvrid_tools.check`: the full dataset check (``Datasets/check_fvrid.py``) on top of the
  library's fast check (:mod:`rvsl.data.check`);
- :mod:`fvrid_tools.demo`: the procedural demo dataset (``Datasets/make_demo.py``);
- :mod:`fvrid_tools.imageio`: the one image writer they share.

The training library (``rvsl``) never imports this package.
"""
