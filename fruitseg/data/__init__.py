"""Training data: Fruits-360 folders, fruit-mask recovery and composite segmentation scenes."""
