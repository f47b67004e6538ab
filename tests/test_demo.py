"""The README demo's comparison picture (patchvsr.demo)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from patchvsr.api import upscale_video
from patchvsr.demo import compare_with_bicubic


def test_comparison_puts_bicubic_left_and_the_output_right(make_video, tmp_path):
    src = make_video("in.mkv", size=(48, 40), frames=5)
    out = tmp_path / "out.mkv"  # lossless, so a bicubic output must match the bicubic half
    upscale_video(src, out, scale=4, model="bicubic", device="cpu")
    path = compare_with_bicubic(src, out, tmp_path / "cmp.png", "bicubic", side=64)
    image = np.asarray(Image.open(path))
    assert image.shape == (128, 2 * 128 + 8, 3)
    left, right = image[20:, :128], image[20:, 136:]  # below the labels
    # the same bicubic computed per frame (left) and by the clip loop (right): one 8-bit level apart at most
    assert np.abs(left.astype(int) - right.astype(int)).max() <= 1 and left.std() > 5
    assert (image[:, 128:136] == 255).all()
