"""Which device runs the model (`--device auto|cpu|cuda|cuda:N`) and in which dtype (`--dtype auto`)."""

from __future__ import annotations

import argparse
import os
import re

import torch

from patchvsr.errors import OptionError

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
DEVICE_HELP = "auto (CUDA when available, else CPU), cpu, cuda or cuda:N (default auto)"


def device_arg(text: str) -> str:
    """argparse type of `--device`: the spelling checked, the GPU's presence left to `resolve_device`.

    Args:
        text (str): the option's value: auto, cpu, cuda or cuda:N (surrounding blanks allowed).

    Returns:
        str: `text` stripped.

    Raises:
        argparse.ArgumentTypeError: for any other spelling.
    """
    if not DEVICE_PATTERN.match(text.strip()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use auto, cpu, cuda or cuda:N")
    return text.strip()


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """`auto` is CUDA when available, else CPU; a CUDA device that is not there is an OptionError.

    Args:
        device (str or torch.device, *optional*, defaults to "auto"): auto, cpu, cuda or cuda:N.

    Returns:
        torch.device: a CPU or CUDA device present on this machine.

    Raises:
        OptionError: for an unknown or unsupported device, or a CUDA device that is not present.
    """
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


# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA) that still include native bf16 instructions (AVX512-BF16 or AMX)
BF16_ISA_CAPS = {"AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX10_1_512", "AVX512_CORE_AMX", "AVX10_1_512_AMX",
                 "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16", "ALL"}


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether `device` computes in bfloat16 natively, and why (words for the start-up log and --stats).

    CUDA: the GPU's bf16 support. CPU: AMX or AVX512-BF16 in the CPU's flags, and neither ATen's kernels
    (ATEN_CPU_CAPABILITY) nor oneDNN's (ONEDNN_MAX_CPU_ISA) capped below them. Elsewhere bf16 is emulated:
    the tiny model runs 7.8x slower in bf16 than in fp32 on an AVX2-capped CPU (docs/RESULTS.md).

    Args:
        device (torch.device): a CPU or CUDA device.

    Returns:
        tuple[bool, str]: (native, reason), the reason in words for the log.
    """
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, f"{torch.cuda.get_device_name(device)} computes bf16 natively"
        return False, f"{torch.cuda.get_device_name(device)} has no native bf16"
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    avx512_bf16 = getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()
    if not (amx or avx512_bf16):
        return False, f"this CPU has no native bf16 (no AMX or AVX512-BF16; {cpu_capability()})"
    if not cpu_capability().startswith("AVX512"):
        return False, f"PyTorch's CPU kernels are capped at {cpu_capability()} (ATEN_CPU_CAPABILITY)"
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "ALL").upper()
    if cap not in BF16_ISA_CAPS:
        return False, f"oneDNN is capped at {cap} (ONEDNN_MAX_CPU_ISA)"
    return True, f"this CPU computes bf16 natively ({'AMX' if amx else 'AVX512-BF16'})"


def cpu_capability() -> str:
    """PyTorch's CPU kernel level: AVX2, AVX512, ... (after ATEN_CPU_CAPABILITY).

    Returns:
        str: the level's name, e.g. "AVX2" or "AVX512".
    """
    return torch.backends.cpu.get_cpu_capability()


def compute_dtype(requested: str, device: torch.device) -> tuple[str, str]:
    """(dtype name, reason) for `--dtype requested`: "auto" is bf16 where `device` runs it natively, else fp32.

    Args:
        requested (str): the `--dtype` value: auto, fp32, bf16 or fp16.
        device (torch.device): the device the model runs on.

    Returns:
        tuple[str, str]: (dtype name: fp32, bf16 or fp16, reason in words for the log).
    """
    if requested != "auto":
        return requested, f"--dtype {requested}"
    native, reason = native_bf16(device)
    return ("bf16" if native else "fp32"), reason
