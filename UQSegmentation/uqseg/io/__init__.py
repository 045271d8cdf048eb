"""Loading images with their geometry and writing results (NRRD, .seg.nrrd, .mrk.json, CSV)."""

from uqseg.io.image import Image
from uqseg.io.load import load_image

__all__ = ["Image", "load_image"]
