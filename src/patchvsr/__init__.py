"""patchvsr: patch-wise video super-resolution with a video diffusion transformer."""

__version__ = "0.1.0"
