"""Inputs of more than 8 bits: decoded at their depth, upscaled in float and written at 10/16 bits, with the colour
tags and HDR10 static metadata of the input; where an output cannot, a log line says what is reduced."""

from __future__ import annotations

import logging
from fractions import Fraction

import av
import numpy as np
import torch

from patchvsr.api import upscale_video
from patchvsr.io.hdr import HDRMetadata
from patchvsr.io.probe import probe
from patchvsr.io.reader import read_frames
from patchvsr.methods import get_upscaler

HDR10 = ("colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:hdr10=1:max-cll=1000,400:"
         "master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)")
BT2020_PQ = {"colorspace": 9, "color_range": 1, "color_primaries": 9, "color_trc": 16}


def write_hdr10_hevc(path, frames: int = 5):
    """10-bit 4:2:0 HEVC, BT.2020 / PQ, limited range, HDR10 mastering display and light level in its SEI."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx265", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 24, "yuv420p10le"
        stream.options = {"crf": "16", "x265-params": f"log-level=error:{HDR10}"}
        context = stream.codec_context
        context.color_primaries, context.color_trc, context.colorspace, context.color_range = 9, 16, 9, 1
        for i in range(frames):
            rgb = rng.integers(4096, 60000, (24, 32, 3)).astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb48le").reformat(format="yuv420p10le",
                                                                               dst_colorspace=9)
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_hdr10_hevc_upscales_to_hdr10_hevc_with_the_same_tags_and_metadata(tmp_path):
    src = write_hdr10_hevc(tmp_path / "hdr.mkv")
    source = probe(src)
    assert source.bit_depth == 10 and source.color == BT2020_PQ
    assert source.hdr == HDRMetadata(
        primaries=((Fraction(17, 25), Fraction(8, 25)), (Fraction(53, 200), Fraction(69, 100)),
                   (Fraction(3, 20), Fraction(3, 50))),
        white=(Fraction(3127, 10000), Fraction(329, 1000)), luminance=(Fraction(1, 10000), Fraction(1000)),
        light=(1000, 400))
    out = tmp_path / "out.mp4"
    upscale_video(src, out, scale=2, codec="hevc")
    result = probe(out)
    with av.open(str(out)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p10le"
    assert (result.bit_depth, result.frames, result.width) == (10, 5, 64)
    assert result.color == BT2020_PQ and result.hdr == source.hdr


def test_av1_carries_hdr10_too_at_its_own_precision(tmp_path):
    src = write_hdr10_hevc(tmp_path / "hdr.mkv", frames=3)
    upscale_video(src, tmp_path / "out.mkv", scale=2, codec="av1")
    source, result = probe(src).hdr, probe(tmp_path / "out.mkv")
    assert result.bit_depth == 10 and result.color == BT2020_PQ and result.hdr.light == source.light
    ours = [float(v) for point in (*result.hdr.primaries, result.hdr.white) for v in point]
    theirs = [float(v) for point in (*source.primaries, source.white) for v in point]
    assert np.allclose(ours, theirs, atol=1e-4)                     # AV1 stores chromaticities in 1/65536
    assert np.allclose([float(v) for v in result.hdr.luminance], [float(v) for v in source.luminance], atol=1e-4)


def write_grey_ramp(path) -> None:
    """3 frames of a smooth 16-bit grey ramp in FFV1 (R = G = B, so 4:2:x chroma has nothing to lose)."""
    y, x = np.mgrid[0:32, 0:48]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "gbrp16le"
        for i in range(3):
            grey = (2000 + 1000 * x + 300 * y + 7 * i).astype(np.uint16)
            frame = av.VideoFrame.from_ndarray(np.stack([grey] * 3, axis=-1), format="rgb48le")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def rms_error_in_8bit_levels(path, reference: np.ndarray) -> float:
    frames = np.stack([f.rgb for f in read_frames(probe(path), full_depth=True)])
    assert frames.dtype == np.uint16
    return float(np.sqrt(np.mean((frames / 65535.0 - reference) ** 2)) * 255.0)


def test_ffv1_and_prores_keep_more_than_8_bits(tmp_path):
    """8-bit rounding alone leaves an RMS error of 1/sqrt(12) = 0.29 levels; FFV1 16-bit RGB must stay within
    0.01 of a level of the float result, ProRes 422 HQ (10-bit) within 0.2."""
    src = tmp_path / "ramp.mkv"
    write_grey_ramp(src)
    frames = np.stack([f.rgb for f in read_frames(probe(src), full_depth=True)]).astype(np.float32) / 65535.0
    bicubic = get_upscaler("bicubic", device="cpu")
    reference = bicubic.upscale_clip(torch.from_numpy(frames).permute(0, 3, 1, 2), (64, 96), 0)
    reference = reference.clamp(0, 1).permute(0, 2, 3, 1).double().numpy()
    upscale_video(src, tmp_path / "out.mkv", scale=2)
    upscale_video(src, tmp_path / "out.mov", scale=2)
    assert probe(tmp_path / "out.mkv").bit_depth == 16 and probe(tmp_path / "out.mov").bit_depth == 10
    assert rms_error_in_8bit_levels(tmp_path / "out.mkv", reference) < 0.01
    assert rms_error_in_8bit_levels(tmp_path / "out.mov", reference) < 0.2


def test_an_8_bit_output_of_a_deep_input_says_so(tmp_path, caplog):
    src = write_hdr10_hevc(tmp_path / "hdr.mkv", frames=2)
    with caplog.at_level(logging.INFO, logger="patchvsr"):
        upscale_video(src, tmp_path / "out.webm", scale=2)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "10-bit input is written with 8 bits" in messages and "HDR10 metadata" in messages
    assert probe(tmp_path / "out.webm").bit_depth == 8
