"""FVRID data: folder scanning, datasets, samplers and loaders."""
