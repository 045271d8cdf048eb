"""uqseg — the engine of UQSegmentation: uncertainty-aware segmentation models, their inputs and outputs.

Pure Python + torch; it knows nothing of 3D Slicer. The Slicer module (`UQSegmentationLib`) builds on it.
"""

__version__ = "0.1.0"
