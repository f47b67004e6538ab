"""`--dtype auto`: bf16 only where the device computes it natively (AMX / AVX512-BF16 not capped, CUDA with
bf16), else fp32; the choice and its reason reach the log and `--stats`."""

from __future__ import annotations

import json

import pytest
import torch

from patchvsr import devices
from patchvsr.cli import main
from patchvsr.devices import compute_dtype, native_bf16
from patchvsr.methods import get_upscaler

CPU = torch.device("cpu")


@pytest.fixture
def cpu_kind(monkeypatch):
    """Pretend to be a CPU with the given flags, kernel capability and oneDNN cap."""
    def make(amx=False, avx512_bf16=False, capability="AVX512", onednn_cap=None):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
        monkeypatch.setattr(devices, "cpu_capability", lambda: capability)
        monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
        if onednn_cap is None:
            monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
        else:
            monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", onednn_cap)
    return make


@pytest.mark.parametrize("kind, native, words", [
    (dict(amx=True, avx512_bf16=True), True, "AMX"),
    (dict(avx512_bf16=True), True, "AVX512-BF16"),
    (dict(capability="AVX2"), False, "no native bf16"),                        # AMD Zen 2/3, most laptops
    (dict(capability="AVX512"), False, "no native bf16"),                      # AVX-512 without BF16
    (dict(amx=True, capability="AVX2"), False, "ATEN_CPU_CAPABILITY"),
    (dict(amx=True, onednn_cap="AVX2"), False, "ONEDNN_MAX_CPU_ISA"),
    (dict(amx=True, onednn_cap="avx512_core_amx"), True, "AMX"),
])
def test_native_bf16_on_cpu(cpu_kind, kind, native, words):
    cpu_kind(**kind)
    found, reason = native_bf16(CPU)
    assert found is native and words in reason
    assert compute_dtype("auto", CPU) == ("bf16" if native else "fp32", reason)


def test_an_explicit_dtype_is_kept(cpu_kind):
    cpu_kind(capability="AVX2")
    assert compute_dtype("bf16", CPU) == ("bf16", "--dtype bf16")
    assert get_upscaler("tiny", CPU).describe()["dtype"] == "fp32"
    assert get_upscaler("tiny", CPU, dtype="bf16").describe()["dtype"] == "bf16"


def test_dtype_reaches_the_log_and_the_stats(cpu_kind, make_video, tmp_path, capsys):
    cpu_kind(capability="AVX2")
    stats = tmp_path / "stats.json"
    assert main(["upscale", str(make_video("in.mkv", size=(8, 8), frames=2)), "-o", str(tmp_path / "out.mkv"),
                 "--model", "tiny", "--clip-frames", "2", "--stats", str(stats)]) == 0
    assert "compute dtype fp32: this CPU has no native bf16" in capsys.readouterr().err
    written = json.loads(stats.read_text())
    assert written["dtype"] == "fp32" and "no native bf16" in written["dtype_reason"]


def test_bad_dtype_is_one_line(make_video, tmp_path, capsys):
    assert main(["upscale", str(make_video("in.mkv", frames=2)), "-o", str(tmp_path / "out.mkv"), "--model", "tiny",
                 "--dtype", "fp8"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["patchvsr: error: --dtype must be one of auto, fp32, bf16, fp16, got 'fp8'"]
