"""The package's two size conventions, named so that every signature says which one it takes.

- `HW` = (height, width): inside the package — tensors, window plans, models, upscalers' `size` arguments —
  in the order of a tensor's last two axes (`frames.shape[-2:]`).
- `WH` = (width, height): at the user-facing edge — `patchvsr upscale --size 1280x720`,
  `api.upscale_video(size=...)`, `PatchVSRPipeline(size=...)`, `io.target.output_size` — in the order people
  write a resolution. `io.target.output_size` turns the edge's (W, H) into the numbers the inside uses.
"""

from __future__ import annotations

HW = tuple[int, int]
"""(height, width) in pixels."""

WH = tuple[int, int]
"""(width, height) in pixels."""
