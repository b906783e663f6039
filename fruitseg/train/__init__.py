"""Training entry points: ``python -m fruitseg.train {classifier,segmenter} ...``."""
