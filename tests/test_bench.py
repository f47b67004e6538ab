"""`patchvsr bench`: --quick end to end, JSON schema, estimate marking, exponent fits, the full-frame baseline."""

from __future__ import annotations

import json
import math

import pytest
import torch

from patchvsr.cli import main
from patchvsr.eval import bench
from patchvsr.eval.bench import (
    ROW_FIELDS, BenchConfig, bench_mode, fill_estimates, fit_power_law, full_frame_ratios, growth_summary, over_cap,
    predict,
)


def _row(mode: str, pixels: int, seconds: float | None, clip_mb: float = 10.0, estimated: bool = False) -> dict:
    side = int(math.isqrt(pixels))
    return {"mode": mode, "width": side, "height": pixels // side, "pixels": pixels, "windows_per_clip": None,
            "frames": 4, "seconds": seconds, "cpu_seconds": None,
            "peak_rss_mb": None if seconds is None else 500.0 + clip_mb,
            "clip_mb": clip_mb, "peak_gpu_mb": None, "runs": 1, "estimated": estimated, "reason": None}


@pytest.mark.parametrize("power", [1, 2, 1.5])
def test_power_law_fit_recovers_exponent_and_coefficient(power):
    pixels = [256**2, 512**2, 960 * 540, 2048 * 1080]
    exponent, coefficient = fit_power_law(pixels, [3e-6 * n**power for n in pixels])
    assert exponent == pytest.approx(power, abs=1e-9)
    assert coefficient == pytest.approx(3e-6, rel=1e-6)


def test_power_law_fit_needs_two_sizes():
    with pytest.raises(ValueError, match="two distinct sizes"):
        fit_power_law([100, 100], [1.0, 2.0])


def test_growth_exponents_use_the_largest_sizes():
    """Linear cost plus a quadratic term that dominates at large sizes: the fit over the three largest sizes
    is close to 2, over all sizes lower; the fit range is reported."""
    pixels = [2**k for k in range(10, 20)]
    rows = [_row("full", n, 1e-3 * n + 1e-7 * n * n, clip_mb=0.01 * n) for n in pixels]
    summary = growth_summary(rows)
    assert summary["fit_pixels"] == [pixels[-3], pixels[-1]] and len(summary["fit_sizes"]) == 3
    assert 1.85 < summary["time_exponent"] < 2.0
    assert summary["time_exponent_all_sizes"] < summary["time_exponent"]
    assert summary["memory_exponent"] == pytest.approx(1.0, abs=1e-6)


def test_predictions_follow_the_fit_and_caps_name_the_reason():
    rows = [_row("none", n, 1e-3 * n, clip_mb=1e-3 * n) for n in (10_000, 20_000, 40_000)]
    seconds, memory = predict(rows, 80_000)
    assert seconds == pytest.approx(80.0) and memory == pytest.approx(500.0 + 80.0)
    assert over_cap(rows, 80_000, time_cap_s=100, memory_cap_mb=1000) is None
    assert "time cap" in over_cap(rows, 80_000, time_cap_s=50, memory_cap_mb=1000)
    assert "memory cap" in over_cap(rows, 80_000, time_cap_s=100, memory_cap_mb=550)
    assert over_cap(rows[:1], 80_000, time_cap_s=1e-9, memory_cap_mb=1) is None  # too few points: measure


def _fake_child(calls: list[int]):
    """Stands in for a child process: seconds = 1e-9·n², memory linear in n, 300x300 runs out of memory."""

    def run(context, target, spec, timeout_s):
        height, width = spec["size"]
        n = width * height
        calls.append(n)
        if n == 300**2:
            return {"error": "process died (exit code -9; out of memory?)"}
        return {"seconds": 1e-9 * n * n, "cpu_seconds": 2e-9 * n * n, "runs": 1, "peak_rss_mb": 600.0 + n / 1e3,
                "base_rss_mb": 600.0, "peak_gpu_mb": None, "windows_per_clip": 1, "frames": 4,
                "seam_score": 1.0, "seam_vs_bicubic": 1.0}

    return run


def test_bench_mode_estimates_beyond_the_time_cap(monkeypatch):
    """Measured while the prediction fits the time cap; from the first size over it on, every size is
    estimated from the fit and marked, never measured."""
    calls = []
    monkeypatch.setattr(bench, "run_child", _fake_child(calls))
    config = BenchConfig(sizes=((800, 800), (100, 100), (400, 400), (200, 200)), modes=("full",), time_cap_s=10)
    rows = bench_mode("full", config, "cpu", 1e6, None, lambda line: None)
    assert calls == [100**2, 200**2]                                   # ascending; 400² predicted 25.6 s
    assert [(r["width"], r["estimated"]) for r in rows] == [(100, False), (200, False), (400, True), (800, True)]
    assert [r["seconds"] for r in rows] == pytest.approx([0.1, 1.6, 25.6, 409.6])
    assert [r["peak_rss_mb"] for r in rows] == pytest.approx([610, 640, 760, 1240])
    assert all("time cap" in r["reason"] for r in rows[2:]) and rows[0]["reason"] is None
    assert tuple(rows[0]) == ROW_FIELDS


def test_bench_mode_estimates_after_a_failed_child(monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "run_child", _fake_child(calls))
    config = BenchConfig(sizes=((100, 100), (200, 200), (300, 300), (400, 400)), modes=("none",), time_cap_s=1e3)
    rows = bench_mode("none", config, "cpu", 1e6, None, lambda line: None)
    assert calls == [100**2, 200**2, 300**2]                           # nothing larger after the failure
    assert [r["estimated"] for r in rows] == [False, False, True, True]
    assert rows[2]["reason"] == rows[3]["reason"] == "process died (exit code -9; out of memory?)"
    assert rows[3]["seconds"] == pytest.approx(1e-9 * 400**4)


def test_cpu_clock_drives_caps_and_estimates(monkeypatch):
    """With clock="cpu" the CPU seconds (here twice the wall seconds) decide the cap and get the estimates;
    the wall seconds of estimated rows stay empty rather than being guessed."""
    monkeypatch.setattr(bench, "run_child", _fake_child([]))
    config = BenchConfig(sizes=((100, 100), (200, 200), (400, 400)), modes=("full",), time_cap_s=40, clock="cpu")
    rows = bench_mode("full", config, "cpu", 1e6, None, lambda line: None)
    assert [r["estimated"] for r in rows] == [False, False, True]       # 51.2 CPU s > 40 (wall: 25.6 s)
    assert rows[2]["cpu_seconds"] == pytest.approx(51.2) and rows[2]["seconds"] is None


def test_fill_estimates_without_a_fit_leaves_values_empty():
    rows = [_row("full", 100, None, estimated=True), _row("full", 400, None, estimated=True)]
    fill_estimates(rows)
    assert [r["seconds"] for r in rows] == [None, None]


def test_full_frame_ratios_at_the_largest_size_both_measured():
    rows = [_row("weighted", n, 1e-3 * n, clip_mb=5.0) for n in (1000, 4000)]
    rows += [_row("weighted", 16000, 16.0, estimated=True)]
    rows += [_row("full", n, 1e-6 * n * n, clip_mb=20.0) for n in (1000, 4000)]
    rows += [_row("full", 16000, 256.0, estimated=True)]
    ratios = full_frame_ratios(rows)["weighted"]
    assert ratios["largest_measured"]["size"] == "63x63" and ratios["largest_measured"]["estimated"] is False
    assert ratios["largest_measured"]["speedup"] == pytest.approx(4.0)
    assert ratios["largest_measured"]["clip_memory_ratio"] == pytest.approx(4.0)
    assert ratios["largest_size"]["speedup"] == pytest.approx(16.0) and ratios["largest_size"]["estimated"]


def test_full_frame_baseline_is_the_same_model_on_one_window():
    """On a canvas of exactly one window the full-frame upscaler and the patch-wise one see the same input,
    global frame, mask, crop box and start latent, so they agree exactly (1 and 2 steps)."""
    from patchvsr.eval.bench_worker import FullFrameUpscaler
    from patchvsr.methods.patchvsr import PatchVSRUpscaler, SamplerOptions
    from patchvsr.models import PatchVSRModel
    from model_helpers import perturb_

    model = perturb_(PatchVSRModel.from_preset("test"), seed=3)
    clip = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    for steps in (1, 2):
        options = SamplerOptions(steps=steps, fusion="none", dtype="fp32")
        patchwise = PatchVSRUpscaler(model, 0.5, options, torch.device("cpu")).upscale_clip(clip, (16, 16), 3)
        full = FullFrameUpscaler(model, 0.5, options, torch.device("cpu")).upscale_clip(clip, (16, 16), 3)
        torch.testing.assert_close(full, patchwise, atol=1e-6, rtol=0)
    odd = FullFrameUpscaler(model, 0.5, options, torch.device("cpu")).upscale_clip(clip, (20, 36), 0)
    assert odd.shape == (2, 3, 20, 36) and 0 <= odd.min() and odd.max() <= 1   # padded to 24x40 and cropped


@pytest.mark.parametrize("fields, match", [
    (dict(modes=("weighted", "bogus")), "modes"), (dict(sizes=((0, 10),)), "sizes"), (dict(steps=0), "steps"),
    (dict(rss_seconds=(60.0, 5.0)), "rss_seconds"), (dict(memory_cap_mb=-1.0), "memory_cap_mb"),
])
def test_config_validation_names_the_field(fields, match):
    with pytest.raises(ValueError, match=match):
        BenchConfig(**fields)


def test_bad_option_is_a_one_line_error(tmp_path, capsys):
    code = main(["bench", "--quick", "--modes", "weighted,bogus", "--json", str(tmp_path / "b.json")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("patchvsr: error:") and "bogus" in err and err.count("\n") == 1
    assert not (tmp_path / "b.json").exists()


def test_quick_bench_end_to_end(tmp_path, capsys):
    """Real child processes on the test preset: 32² and 48² measured, 64² estimated (the quick time cap is
    tiny), every mode; ratios, fits, RSS-vs-length rows, plots and the markdown table."""
    out, plots = tmp_path / "bench.json", tmp_path / "plots"
    assert main(["bench", "--quick", "--threads", "1", "--json", str(out), "--plots", str(plots)]) == 0
    data = json.loads(out.read_text())
    assert set(data) == {"model", "settings", "rows", "fits", "ratios", "rss_vs_length"}
    assert "random weights" in data["model"] and data["settings"]["steps"] == 2
    rows = {(r["mode"], r["width"]): r for r in data["rows"]}
    assert len(rows) == 15 and all(tuple(r) == ROW_FIELDS for r in data["rows"])
    windows = {"band": (9, 16), "weighted": (9, 25), "none": (4, 9), "shifted": (6.5, 12.5), "full": (1, 1)}  # 16 px
    for mode, counts in windows.items():
        small, medium, large = rows[(mode, 32)], rows[(mode, 48)], rows[(mode, 64)]
        assert (small["windows_per_clip"], medium["windows_per_clip"]) == counts
        for measured in (small, medium):
            assert not measured["estimated"] and measured["reason"] is None and measured["runs"] >= 1
            assert measured["seconds"] > 0 and measured["peak_rss_mb"] > 50 and measured["frames"] == 2
            assert (measured["seam_vs_bicubic"] is None) == (mode == "full")  # one window: no seam to score
            assert mode == "full" or measured["seam_score"] > 0
        assert large["estimated"] and "time cap" in large["reason"] and large["runs"] == 0
        exponent = math.log(medium["seconds"] / small["seconds"]) / math.log(48**2 / 32**2)
        expected = medium["seconds"] * (64**2 / 48**2) ** exponent            # the two-point power law
        assert large["seconds"] == pytest.approx(expected, rel=2e-3)
        assert data["fits"][mode]["fit_sizes"] == ["32x32", "48x48"]
    assert data["ratios"]["weighted"]["largest_measured"]["size"] == "48x48"
    assert data["ratios"]["weighted"]["largest_size"]["estimated"] is True
    rss = data["rss_vs_length"]
    assert [(r["method"], r["frames"]) for r in rss["rows"]] == [("bicubic", 10), ("bicubic", 50)]
    assert all(r["error"] is None and r["peak_rss_mb"] > 50 and r["output"] == "704x576" for r in rss["rows"])
    assert rss["growth"]["bicubic"]["growth_mb"] < 50                   # streaming: no per-frame growth
    assert sorted(p.name for p in plots.iterdir()) == ["memory_vs_pixels.png", "rss_vs_length.png",
                                                      "time_vs_pixels.png"]
    table = capsys.readouterr().out
    assert "| 64×64 | 0.00 | ≈" in table and "band seam / bicubic's" in table and "full-frame / weighted at 48x48" in table


def test_speed_table_times_every_method_end_to_end(monkeypatch, tmp_path):
    from patchvsr.eval import speed

    monkeypatch.setenv("PATCHVSR_CACHE", str(tmp_path / "empty-cache"))  # no Real-ESRGAN weights here
    monkeypatch.setattr(speed, "METHODS", (("default", "bicubic", {}), ("lanczos", "lanczos", {}),
                                           ("realesrgan-animevideov3", "realesrgan-animevideov3", {})))
    monkeypatch.setattr(speed, "PEERS", ("lanczos", "realesrgan-animevideov3"))
    monkeypatch.setattr(speed, "SLOW", {"lanczos"})
    import patchvsr.api
    import patchvsr.methods

    calls, get_upscaler, upscale_video = [], patchvsr.methods.get_upscaler, patchvsr.api.upscale_video
    monkeypatch.setattr(patchvsr.methods, "get_upscaler", lambda model, **kw: calls.append(("load", model))
                        or get_upscaler(model, **kw))
    monkeypatch.setattr(patchvsr.api, "upscale_video", lambda src, dst, model, **kw: calls.append(("time", model))
                        or upscale_video(src, dst, model=model, **kw))
    result = speed.run_speed(speed.SpeedConfig(frames=6), log=lambda line: None)
    loads = [("load", "bicubic"), ("load", "lanczos"), ("load", "realesrgan-animevideov3")]
    assert calls[:3] == loads and ("time", "bicubic") in calls[3:]  # every model loaded before the first timing
    default, lanczos, skipped = result["rows"]
    assert (default["frames"], default["width"], default["height"]) == (6, 1280, 720)
    assert lanczos["frames"] == speed.SLOW_FRAMES  # the slow peer runs on the first frames only
    assert default["seconds"] > 0 and default["output_mpix_per_s"] == pytest.approx(
        6 * 1280 * 720 / 1e6 / default["seconds"], rel=0.01)
    assert "skipped" in skipped and "realesrgan" in skipped["skipped"]
    assert result["ratios"] == {"default / lanczos": round(default["output_mpix_per_s"]
                                                          / lanczos["output_mpix_per_s"], 3)}
    table = speed.markdown_table(result)
    assert result["machine"]["cpu_capability"] in table and "skipped" in table
    with pytest.raises(ValueError, match="--frames"):
        speed.SpeedConfig(frames=2)


def test_speed_candidates_come_after_the_default_settings_with_an_fp32_row():
    from patchvsr.eval import speed

    rows = speed.methods(("runs/x/model",))
    labels = [label for label, _, _ in rows]
    at = labels.index("candidate runs/x/model")
    assert labels[at + 1] == "candidate runs/x/model, dtype fp32" and rows[at + 1][2] == {"dtype": "fp32"}
    assert labels.index("dtype fp32") < at < labels.index("bicubic")
    assert speed.methods(()) == list(speed.METHODS)
