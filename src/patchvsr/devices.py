"""Which device runs the model: `--device auto|cpu|cuda|cuda:N`, checked once for the CLI and the API."""

from __future__ import annotations

import argparse
import re

import torch

from patchvsr.errors import OptionError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default auto)"


def device_arg(text: str) -> str:
    """argparse type of `--device`: the spelling checked, the GPU's presence left to `resolve_device`."""
    if not DEVICE_PATTERN.match(text.strip()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use auto, cpu, cuda or cuda:N")
    return text.strip()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` is CUDA when available, else CPU; a CUDA device that is not there is an OptionError."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise OptionError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N") from err
    if resolved.type not in ("cpu", "cuda"):
        raise OptionError(f"unsupported device {device!r}: use auto, cpu, cuda or cuda:N")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"--device {device} requested but no CUDA GPU is available")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise OptionError(f"--device {device} requested but only {torch.cuda.device_count()} CUDA GPU(s) "
                              "are present")
    return resolved
