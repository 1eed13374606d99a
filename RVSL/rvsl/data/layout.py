"""The FVRID layout table under its former name: :mod:`rvsl.layout` holds it (a leaf module, so that the config
defaults can read it without importing the data package); this module only re-exports it."""

from ..layout import (BY_KEY, CONDITIONS, DEFAULT_PATHS, DEV_KEYS, DEV_SPLITS, DOMAINS, FOLDERS, REAL_CLEAR,
                      REAL_HAZY, REAL_TRAIN_KEY, SPLITS, STAGE_REAL_DOMAIN, STAGE_TEST_SET, SYN, TEST_KEYS, TEST_SETS,
                      LayoutFolder, eval_folders, find, select, stage_domains, training_folders, twin)

__all__ = ["BY_KEY", "CONDITIONS", "DEFAULT_PATHS", "DEV_KEYS", "DEV_SPLITS", "DOMAINS", "FOLDERS", "REAL_CLEAR",
           "REAL_HAZY", "REAL_TRAIN_KEY", "SPLITS", "STAGE_REAL_DOMAIN", "STAGE_TEST_SET", "SYN", "TEST_KEYS",
           "TEST_SETS", "LayoutFolder", "eval_folders", "find", "select", "stage_domains", "training_folders", "twin"]
