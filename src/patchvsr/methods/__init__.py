"""Upscaling methods by name: `get_upscaler("bicubic")`, or a trained model's folder.

`UPSCALERS` is the registry of built-in names: each maps to a factory `(device, **options) -> Upscaler`.
Names that are not in it but are existing folders load a trained PatchVSR model through
`patchvsr.methods.patchvsr.load_upscaler(path, device=..., **options)`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from patchvsr.devices import resolve_device
from patchvsr.errors import OptionError
from patchvsr.methods.base import Upscaler
from patchvsr.methods.classical import Bicubic, Lanczos
from patchvsr.options import MODEL_OPTION_NAMES, MODEL_OPTION_TYPES

# The model `patchvsr upscale` uses without --model: the trained model shipped in the package. The environment
# variable PATCHVSR_MODEL replaces it (the test suite sets "bicubic" so that I/O tests stay fast).
DEFAULT_MODEL = "lite"


def _reject_model_options(name: str, options: dict) -> None:
    """OptionError naming the first diffusion-only option given to a method that has no such knob."""
    for option, value in options.items():
        if value is not None:
            flag = "--" + option.replace("_", "-")
            raise OptionError(f"{flag} applies only to diffusion models, not to --model {name}")


def _classical(cls: type) -> Callable[..., Upscaler]:
    def make(device: torch.device, **options) -> Upscaler:
        _reject_model_options(cls.name, options)
        return cls(device=device)
    return make


def _shipped(model: str) -> Callable[..., Upscaler]:
    def make(device: torch.device, **options) -> Upscaler:
        from patchvsr.methods.patchvsr import load_shipped  # imports the models only when asked for

        return load_shipped(model, device, **options)
    return make


def _realesrgan(name: str) -> Callable[..., Upscaler]:
    def make(device: torch.device, **options) -> Upscaler:
        _reject_model_options(name, options)
        from patchvsr.methods.realesrgan import RealESRGANUpscaler

        return RealESRGANUpscaler(name, device=device)
    return make


UPSCALERS: dict[str, Callable[..., Upscaler]] = {
    "bicubic": _classical(Bicubic),
    "lanczos": _classical(Lanczos),
    "lite": _shipped("lite"),
    "tiny": _shipped("tiny"),
    # Real-ESRGAN peers (weights fetched once by `patchvsr fetch realesrgan`)
    "realesrgan-animevideov3": _realesrgan("realesrgan-animevideov3"),
    "realesrgan-x4plus": _realesrgan("realesrgan-x4plus"),
}


def default_model() -> str:
    """The model used when none is named: $PATCHVSR_MODEL if set, else DEFAULT_MODEL.

    Returns:
        str: a key of UPSCALERS or a trained model's folder.
    """
    return os.environ.get("PATCHVSR_MODEL") or DEFAULT_MODEL


def get_upscaler(name: str | None = None, device: str | torch.device = "auto", **options) -> Upscaler:
    """The upscaler called `name` (a key of UPSCALERS or a model folder; None: `default_model()`) on `device`.

    Args:
        name (str, optional): a key of UPSCALERS or a trained model's folder; None: `default_model()`.
        device (str | torch.device, optional): "auto", "cpu", "cuda" or "cuda:N", or a torch.device.
        **options: the model options of MODEL_OPTION_NAMES; None means "the model's default".

    Returns:
        Upscaler: the method, its model loaded on the resolved device.

    Raises:
        OptionError: an unknown model, model option or device, or a diffusion option given to a method without it.
        InputError: a folder that is not a trained model.
    """
    name = name or default_model()
    unknown = sorted(set(options) - set(MODEL_OPTION_NAMES))
    if unknown:
        raise OptionError(f"unknown model option {unknown[0]!r}; known: {', '.join(MODEL_OPTION_NAMES)}")
    resolved = resolve_device(device)
    if name in UPSCALERS:
        return UPSCALERS[name](resolved, **options)
    if Path(name).is_dir():
        return _load_model_folder(Path(name), resolved, options)
    choices = ", ".join(UPSCALERS)
    raise OptionError(f"unknown model {name!r}: use one of {choices} or a trained model's folder")


def parse_method(spec: str) -> tuple[str, dict]:
    """A method with its options in one word, as `patchvsr eval --methods` takes it:
    "tiny:steps=4:t0=0.5" -> ("tiny", {"steps": 4, "t0": 0.5}); "bicubic" -> ("bicubic", {}).
    Only the trailing ":KEY=VALUE" parts are options, so a folder name may hold a colon.

    Args:
        spec (str): "NAME" or "NAME:OPTION=VALUE:...", OPTION one of MODEL_OPTION_NAMES ("-" or "_").

    Returns:
        tuple[str, dict]: the method name and its options, each value converted by MODEL_OPTION_TYPES.

    Raises:
        OptionError: an unknown option, a part without "=", or a value that does not convert.
    """
    parts = spec.split(":")
    first = len(parts)
    while first > 1 and "=" in parts[first - 1]:
        first -= 1
    name, pairs = ":".join(parts[:first]), parts[first:]
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in MODEL_OPTION_TYPES:
            raise OptionError(f"bad method option {pair!r} in {spec!r}: use NAME:OPTION=VALUE with OPTION one of "
                              f"{', '.join(MODEL_OPTION_NAMES)}")
        try:
            options[key] = MODEL_OPTION_TYPES[key](value.strip())
        except ValueError:
            raise OptionError(f"bad value {value!r} for {key} in {spec!r}") from None
    return name.strip(), options


def _load_model_folder(path: Path, device: torch.device, options: dict) -> Upscaler:
    if (path / "patchvsr_wan.json").is_file():  # a PatchVSR adapter for a Wan base (patchvsr.backends)
        from patchvsr.backends.wan_upscaler import load_wan_upscaler

        return load_wan_upscaler(path, device=device, **options)
    from patchvsr.methods.patchvsr import load_upscaler

    return load_upscaler(path, device=device, **options)
