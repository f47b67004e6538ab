"""Build a PyTorch network from an ncnn model (`.param` graph + `.bin` weights), bit-faithful to ncnn.

Only the layer types that Real-ESRGAN's ncnn exports use are supported; anything else raises ValueError
naming the layer. `realesr-animevideov3` comes out as SRVGGNetCompact (3x3 conv + PReLU body, PixelShuffle,
nearest-upsampled input added back) and `realesrgan-x4plus` as RRDBNet (23 residual-in-residual dense blocks,
LeakyReLU fused into convs, nearest x2 upsampling twice), because the module is the graph itself.

`.param` (text): magic `7767517`; `layer_count blob_count`; then per layer
`Type name n_in n_out in_blobs... out_blobs... key=value...`, where a key <= -23300 marks an array
(id = -key - 23300, value `count,v1,v2,...`).

`.bin` (binary, no header): the weights of the layers that have any, in `.param` order, back to back:
- Convolution: weights (out, in, kh, kw) as a 4-byte tag then data, padded to 4 bytes (tag 0x01306B47:
  float16; tag 0x00000000 or 0x0002C056: float32); then, if bias_term, `out` float32 biases with no tag.
- PReLU: `num_slope` float32 slopes with no tag.
The loader consumes the file to the exact byte and fails if any byte is left over or missing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MAGIC = 7767517
TAG_FP16 = 0x01306B47
TAGS_FP32 = (0x00000000, 0x0002C056)


@dataclass(frozen=True)
class Layer:
    """One line of a `.param` file: kind, name, input and output blob names, and the key=value parameters."""

    kind: str
    name: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]
    params: dict

    def get(self, key: int, default=None):
        """A parameter of the layer.

        Args:
            key (int): the parameter id (an array's id is already -key - 23300).
            default: returned when the line does not set `key`.

        Returns:
            int | float | list: the value (a list for an array parameter), else `default`.
        """
        return self.params.get(key, default)


def _parse_value(text: str):
    return float(text) if any(c in text for c in ".eE") else int(text)


def parse_param(text: str) -> list[Layer]:
    """Parse `.param` text into layers, in file (= execution) order.

    Args:
        text (str): the whole `.param` file.

    Returns:
        list[Layer]: one per layer line.

    Raises:
        ValueError: no magic number, or a layer count that differs from the header's.
    """
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(MAGIC)]:
        raise ValueError("not an ncnn .param file (magic 7767517 missing)")
    layers = []
    for fields in lines[2:]:
        kind, name, n_in, n_out = fields[0], fields[1], int(fields[2]), int(fields[3])
        bottoms, tops = tuple(fields[4:4 + n_in]), tuple(fields[4 + n_in:4 + n_in + n_out])
        params = {}
        for item in fields[4 + n_in + n_out:]:
            key, value = item.split("=", 1)
            key = int(key)
            if key <= -23300:
                params[-key - 23300] = [_parse_value(v) for v in value.split(",")[1:]]
            else:
                params[key] = _parse_value(value)
        layers.append(Layer(kind, name, bottoms, tops, params))
    if len(layers) != int(lines[1][0]):
        raise ValueError(f"param header announces {lines[1][0]} layers, file has {len(layers)}")
    return layers


class ConvAct(nn.Module):
    """ncnn Convolution: conv2d then the fused activation (none / ReLU / LeakyReLU(slope))."""

    def __init__(self, layer: Layer):
        super().__init__()
        out_ch, kw = layer.get(0), layer.get(1)
        kh = layer.get(11, kw)
        in_ch = layer.get(6) // (out_ch * kh * kw)
        pad_w = layer.get(4, 0)
        pad_h = layer.get(14, pad_w)
        if pad_w < 0 or layer.get(15, pad_w) != pad_w or layer.get(16, pad_h) != pad_h:
            raise ValueError(f"{layer.name}: only symmetric explicit padding is supported")
        self.conv = nn.Conv2d(in_ch, out_ch, (kh, kw), stride=(layer.get(13, layer.get(3, 1)), layer.get(3, 1)),
                              padding=(pad_h, pad_w), dilation=(layer.get(12, layer.get(2, 1)), layer.get(2, 1)),
                              bias=bool(layer.get(5, 0)))
        activation = layer.get(9, 0)
        if activation not in (0, 1, 2):
            raise ValueError(f"{layer.name}: unsupported fused activation type {activation}")
        self.activation = activation
        self.slope = float(layer.get(10, [0.0])[0]) if activation == 2 else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve, then apply the fused activation.

        Args:
            x (torch.Tensor): (B, in, H, W) float32.

        Returns:
            torch.Tensor: (B, out, H', W') float32, H' and W' from the kernel, stride, padding and dilation.
        """
        y = self.conv(x)
        if self.activation == 1:
            return F.relu(y)
        return F.leaky_relu(y, self.slope) if self.activation == 2 else y


class Interp(nn.Module):
    """ncnn Interp: nearest / bilinear / bicubic (a = -0.75, half-pixel centres) by scale or to a size."""

    MODES = {1: "nearest", 2: "bilinear", 3: "bicubic"}

    def __init__(self, layer: Layer):
        super().__init__()
        if layer.get(0) not in self.MODES or layer.get(6, 0):
            raise ValueError(f"{layer.name}: unsupported Interp type {layer.get(0)} / align_corner")
        self.mode = self.MODES[layer.get(0)]
        self.scale = (float(layer.get(1, 1.0)), float(layer.get(2, 1.0)))
        self.size = (layer.get(3, 0), layer.get(4, 0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Resize `x` by the layer's scale or to its output size.

        As ncnn: nearest maps coordinates with 1 / scale, bilinear and bicubic with H / H'.

        Args:
            x (torch.Tensor): (B, C, H, W) float.

        Returns:
            torch.Tensor: (B, C, H', W'), H' = int(H * height_scale) and W' likewise unless an output size is set.
        """
        if self.mode == "nearest" and not all(self.size):
            return F.interpolate(x, scale_factor=self.scale, mode="nearest")
        size = self.size if all(self.size) else (int(x.shape[-2] * self.scale[0]), int(x.shape[-1] * self.scale[1]))
        extra = {} if self.mode == "nearest" else {"align_corners": False}
        return F.interpolate(x, size=size, mode=self.mode, **extra)


class Combine(nn.Module):
    """Multi-input ncnn layers: Concat (channels), BinaryOp add, Eltwise weighted sum."""

    def __init__(self, layer: Layer):
        super().__init__()
        self.kind = layer.kind
        if layer.kind == "Concat" and layer.get(0, 0) != 0:
            raise ValueError(f"{layer.name}: only channel concat is supported")
        if layer.kind == "BinaryOp" and (layer.get(0, 0) != 0 or layer.get(1, 0)):
            raise ValueError(f"{layer.name}: only tensor + tensor BinaryOp is supported")
        if layer.kind == "Eltwise" and layer.get(0, 1) != 1:
            raise ValueError(f"{layer.name}: only Eltwise sum is supported")
        self.coeffs = [float(c) for c in layer.get(1, [])] if layer.kind == "Eltwise" else []

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        """Concatenate (Concat) or add with the layer's coefficients (BinaryOp, Eltwise).

        Args:
            *xs (torch.Tensor): tensors (B, C_i, H, W); all C_i equal except for Concat.

        Returns:
            torch.Tensor: (B, C, H, W), C = sum of the C_i for Concat, else the common C_i.
        """
        if self.kind == "Concat":
            return torch.cat(xs, dim=1)
        coeffs = self.coeffs or [1.0] * len(xs)
        return sum(c * x for c, x in zip(coeffs, xs))


def _build(layer: Layer) -> nn.Module:
    if layer.kind == "Convolution":
        return ConvAct(layer)
    if layer.kind == "PReLU":
        return nn.PReLU(layer.get(0, 1))
    if layer.kind == "PixelShuffle":
        if layer.get(1, 0) != 0:
            raise ValueError(f"{layer.name}: only PyTorch-order PixelShuffle (mode 0) is supported")
        return nn.PixelShuffle(layer.get(0))
    if layer.kind == "Interp":
        return Interp(layer)
    if layer.kind in ("Concat", "BinaryOp", "Eltwise"):
        return Combine(layer)
    if layer.kind in ("Input", "Split"):
        return nn.Identity()
    raise ValueError(f"{layer.name}: unsupported ncnn layer type {layer.kind}")


class NcnnGraph(nn.Module):
    """The `.param` graph as a PyTorch module; forward walks the layers in order over named blobs.

    Blobs are dropped after their last use, so peak memory is that of the widest cut, as in ncnn.
    """

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self.layers = layers
        self.ops = nn.ModuleDict({_key(layer.name): _build(layer) for layer in layers})
        self.input_blob = next(layer.tops[0] for layer in layers if layer.kind == "Input")
        produced = {top for layer in layers for top in layer.tops}
        consumed = {bottom for layer in layers for bottom in layer.bottoms}
        outputs = sorted(produced - consumed)
        if len(outputs) != 1:
            raise ValueError(f"graph must have exactly one output blob, found {outputs}")
        self.output_blob = outputs[0]
        self.last_use = {b: i for i, layer in enumerate(layers) for b in layer.bottoms}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the graph on a batch of frames.

        Args:
            x (torch.Tensor): (B, 3, H, W) float32 RGB in [0, 1].

        Returns:
            torch.Tensor: (B, 3, sH, sW) float32 for the model's native scale s, roughly in [0, 1] (not clamped).
        """
        blobs = {self.input_blob: x}
        for index, layer in enumerate(self.layers):
            if layer.kind == "Input":
                continue
            inputs = [blobs[b] for b in layer.bottoms]
            result = self.ops[_key(layer.name)](*inputs)
            for top in layer.tops:  # Split fans one tensor out under several names
                blobs[top] = result
            for bottom in layer.bottoms:
                if self.last_use[bottom] == index and bottom != self.output_blob:
                    blobs.pop(bottom, None)
        return blobs[self.output_blob]


def _key(name: str) -> str:
    return name.replace(".", "_")


def load_bin(graph: NcnnGraph, data: bytes) -> None:
    """Fill the graph's weights from `.bin` bytes, in layer order; the whole buffer must be consumed.

    Args:
        graph (NcnnGraph): the network of the matching `.param`, filled in place.
        data (bytes): the whole `.bin` file.

    Raises:
        ValueError: the file ends early, has bytes left over, or stores weights in an unsupported format.
    """
    offset = 0
    for layer in graph.layers:
        op = graph.ops[_key(layer.name)]
        if isinstance(op, ConvAct):
            weight, offset = _read_tagged(data, offset, op.conv.weight.numel(), layer.name)
            op.conv.weight.data.copy_(torch.from_numpy(weight).view_as(op.conv.weight))
            if op.conv.bias is not None:
                bias, offset = _read_fp32(data, offset, op.conv.bias.numel(), layer.name)
                op.conv.bias.data.copy_(torch.from_numpy(bias))
        elif isinstance(op, nn.PReLU):
            slope, offset = _read_fp32(data, offset, op.weight.numel(), layer.name)
            op.weight.data.copy_(torch.from_numpy(slope))
    if offset != len(data):
        raise ValueError(f".bin has {len(data)} bytes but the graph uses {offset}")


def _read_fp32(data: bytes, offset: int, count: int, name: str) -> tuple[np.ndarray, int]:
    end = offset + 4 * count
    if end > len(data):
        raise ValueError(f"{name}: .bin ends early ({len(data)} bytes, need {end})")
    return np.frombuffer(data, dtype="<f4", count=count, offset=offset).copy(), end


def _read_tagged(data: bytes, offset: int, count: int, name: str) -> tuple[np.ndarray, int]:
    """A tagged weight blob: 4-byte tag, then float16 (padded to 4 bytes) or float32 values."""
    (tag,) = struct.unpack_from("<I", data, offset)
    offset += 4
    if tag in TAGS_FP32:
        return _read_fp32(data, offset, count, name)
    if tag != TAG_FP16:
        raise ValueError(f"{name}: unsupported weight storage tag 0x{tag:08X} (quantised models are not supported)")
    end = offset + 2 * count
    if end > len(data):
        raise ValueError(f"{name}: .bin ends early ({len(data)} bytes, need {end})")
    values = np.frombuffer(data, dtype="<f2", count=count, offset=offset).astype(np.float32)
    return values, offset + (2 * count + 3) // 4 * 4


def load_ncnn(param_path: Path, bin_path: Path) -> NcnnGraph:
    """Build the network of `param_path` and load `bin_path` into it.

    Args:
        param_path (Path): the `.param` graph.
        bin_path (Path): the `.bin` weights.

    Returns:
        NcnnGraph: in eval mode, float32, on the CPU, without gradients.

    Raises:
        ValueError: an unsupported layer or a malformed file (see `parse_param` and `load_bin`).
    """
    graph = NcnnGraph(parse_param(Path(param_path).read_text()))
    load_bin(graph, Path(bin_path).read_bytes())
    return graph.eval().requires_grad_(False)
