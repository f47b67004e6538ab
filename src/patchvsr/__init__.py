"""patchvsr: patch-wise video super-resolution with a video diffusion transformer."""

from patchvsr.version import __version__

__all__ = ["__version__", "upscale_video", "upscale_stream"]


def __getattr__(name: str):
    """`patchvsr.upscale_video` / `upscale_stream`, imported on first use so `import patchvsr` stays light."""
    if name in ("upscale_video", "upscale_stream"):
        from patchvsr import api

        return getattr(api, name)
    raise AttributeError(f"module 'patchvsr' has no attribute {name!r}")
