"""Emotion Director core: emotion maths and models, independent of ComfyUI."""

__version__ = "0.1.0"
