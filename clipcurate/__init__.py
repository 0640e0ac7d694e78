"""clipcurate: curate web-scale image-text datasets for CLIP-style models with Apache Beam."""

__version__ = "0.1.0"
