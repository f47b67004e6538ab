"""Ray inference on a local 2-CPU cluster gives the same decoded frames, audio and metadata as one process."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from patchvsr.api import upscale_clips, upscale_video
from patchvsr.batch import upscale_batch
from patchvsr.cli import main
from patchvsr.errors import OptionError
from patchvsr.io.synth import synthetic_frame
from patchvsr.models import PatchVSRModel
from model_helpers import perturb_
from patchvsr.tiling.temporal import split_clips

ray = pytest.importorskip("ray")
from patchvsr.distributed import RayOptions, RayRunner, UpscalerSpec, task_groups, upscale_video_ray  # noqa: E402

# model options giving overlapping clips (4 frames, 1 shared) and seeded noise (detail mode, 2 steps)
DETAIL = dict(clip_frames=4, steps=2, seed=3, dtype="fp32")


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # CrashOnceSpec travels by value
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory) -> str:
    """A random-weight PatchVSR model ("test" preset, perturbed so it changes its input)."""
    folder = tmp_path_factory.mktemp("model")
    model = PatchVSRModel.from_preset("test", seed=0)
    perturb_(model, seed=1)
    model.save_pretrained(folder)
    (folder / "training.json").write_text(json.dumps({"residual_std": 0.12}))
    return str(folder)


def _both(make_video, tmp_path, name: str, suffix: str, options: dict, ray_options: RayOptions, **video):
    src = make_video(name, **video)
    local = upscale_video(src, f"{tmp_path}/local{suffix}", **options)
    remote = upscale_video_ray(src, f"{tmp_path}/ray{suffix}", ray=ray_options, **options)
    return tmp_path / f"local{suffix}", tmp_path / f"ray{suffix}", local, remote


def test_bicubic_mp4_with_audio_equals_single_process(cluster, make_video, tmp_path, decode_video, video_facts):
    local, remote, _, stats = _both(make_video, tmp_path, "in.mp4", ".mp4", dict(scale=2),
                                    RayOptions(clips_per_task=5), size=(24, 16), frames=17, audio=True,
                                    title="ray", language="fra")
    np.testing.assert_array_equal(decode_video(remote), decode_video(local))
    assert video_facts(remote) == video_facts(local)  # frame times, audio length, title, language
    assert stats["ray"] == {"workers": 2, "gpus": 0, "clips_per_task": 5, "clips": 17}
    assert (stats["frames"], stats["width"], stats["height"], stats["model"]) == (17, 48, 32, "bicubic")


def test_patchvsr_model_with_overlapping_clips_equals_single_process(cluster, make_video, tmp_path,
                                                                     decode_video, model_folder):
    """11 frames in clips of 4 sharing 1: 4 clips, 2 tasks; the second recomputes clip 1 for the cross-fade."""
    options = dict(scale=2, model=model_folder, **DETAIL)
    local, remote, local_stats, stats = _both(make_video, tmp_path, "in.mkv", ".mkv", options,
                                              RayOptions(clips_per_task=2), size=(12, 10), frames=11)
    ours, theirs = decode_video(remote), decode_video(local)
    assert ours.shape == (11, 20, 24, 3)
    np.testing.assert_array_equal(ours, theirs)
    assert stats["ray"]["clips"] == 4 and stats["windows_per_clip"] == local_stats["windows_per_clip"] == 9


def test_png_folder_output_with_default_task_size(cluster, make_video, tmp_path, decode_video, model_folder):
    options = dict(scale=2, model=model_folder, **DETAIL)
    local, remote, _, stats = _both(make_video, tmp_path, "frames", "/", options, RayOptions(),
                                    size=(8, 8), frames=7)
    np.testing.assert_array_equal(decode_video(remote), decode_video(local))
    assert stats["ray"]["clips_per_task"] == 1  # 2 clips, 2 workers: one clip per task


def test_cli_flag_uses_the_running_cluster(cluster, make_video, tmp_path, decode_video):
    src = make_video("in.mkv", size=(10, 6), frames=3)
    assert main(["upscale", str(src), "-o", str(tmp_path / "ray.mkv"), "--scale", "3", "--ray", "-q",
                 "--stats", str(tmp_path / "stats.json")]) == 0
    assert main(["upscale", str(src), "-o", str(tmp_path / "local.mkv"), "--scale", "3", "-q"]) == 0
    np.testing.assert_array_equal(decode_video(tmp_path / "ray.mkv"), decode_video(tmp_path / "local.mkv"))
    assert json.loads((tmp_path / "stats.json").read_text())["ray"]["workers"] == 2


def test_bad_model_option_is_a_one_line_error_and_leaves_nothing(cluster, make_video, tmp_path, capsys,
                                                                 model_folder):
    src = make_video("in.mkv", frames=2)
    with pytest.raises(OptionError, match="--steps"):
        upscale_video_ray(src, tmp_path / "out.mkv", model=model_folder, steps=0)
    assert main(["upscale", str(src), "-o", str(tmp_path / "out.mkv"), "--ray", "--model", model_folder,
                 "--steps", "0"]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("patchvsr: error: --steps")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.mkv"]


@dataclasses.dataclass(frozen=True)
class CrashOnceSpec:
    """An UpscalerSpec whose upscaler kills its worker process the first time it reaches `clip`."""

    inner: UpscalerSpec
    marker: str
    clip: int
    device: str = "cpu"

    def build(self):
        return CrashOnce(self.inner.build(), self.marker, self.clip)


class CrashOnce:
    def __init__(self, upscaler, marker: str, clip: int):
        self.upscaler, self.marker, self.clip = upscaler, Path(marker), clip
        self.name, self.clip_frames, self.clip_overlap = upscaler.name, upscaler.clip_frames, upscaler.clip_overlap

    def describe(self) -> dict:
        return self.upscaler.describe()

    def upscale_clip(self, clip: torch.Tensor, size: tuple[int, int], clip_index: int) -> torch.Tensor:
        if clip_index == self.clip and not self.marker.exists():
            self.marker.touch()
            os._exit(1)  # a worker lost mid-task, as a crashed process or a vanished node
        return self.upscaler.upscale_clip(clip, size, clip_index)


def test_task_lost_with_its_worker_is_retried(cluster, tmp_path, model_folder):
    frames = [synthetic_frame(i, 6, 6) for i in range(10)]
    spec = CrashOnceSpec(UpscalerSpec.create(model_folder, "cpu", **DETAIL), str(tmp_path / "crashed"), clip=2)
    expected = list(upscale_clips(frames, spec.inner.build(), (12, 12)))
    with RayRunner(RayOptions(max_retries=2)) as runner:
        layout = runner.layout(spec)
        got = list(runner.upscale_clips(frames, spec, layout, (12, 12), start_clip=0, per_task=2))
    assert (tmp_path / "crashed").exists()
    assert [block.index for block in got] == [block.index for block in expected] == [0, 1, 2]
    for ours, theirs in zip(got, expected):
        np.testing.assert_array_equal(ours.frames, theirs.frames)


def test_resumed_start_matches_the_single_process_resume(cluster, model_folder):
    """Starting at clip 2 (as --resume does) seeds the cross-fade with clip 1, like `upscale_clips`."""
    frames = [synthetic_frame(i, 6, 6) for i in range(13)]
    spec = UpscalerSpec.create(model_folder, "cpu", **DETAIL)
    expected = list(upscale_clips(frames, spec.build(), (12, 12), start_clip=2))
    with RayRunner() as runner:
        got = list(runner.upscale_clips(frames, spec, runner.layout(spec), (12, 12), 2, per_task=1))
    assert [block.index for block in got] == [2, 3]
    for ours, theirs in zip(got, expected):
        np.testing.assert_array_equal(ours.frames, theirs.frames)


def test_task_groups_carry_the_previous_clip_as_seed():
    clips = list(split_clips(range(11), 4, 1))  # 4 clips of 4 frames, step 3
    groups = [([c.index for c in group], seeded) for group, seeded in task_groups(clips, 2, True, False)]
    assert groups == [([0, 1], False), ([1, 2, 3], True)]
    resumed = [([c.index for c in g], s) for g, s in task_groups(clips[1:], 2, True, warmup=True)]
    assert resumed == [([1, 2, 3], True)]
    plain = [([c.index for c in g], s) for g, s in task_groups(clips, 3, False, False)]
    assert plain == [([0, 1, 2], False), ([3], False)]


@pytest.mark.parametrize("options, word", [(dict(clips_per_task=0), "clips_per_task"),
                                           (dict(max_retries=-1), "max_retries"),
                                           (dict(cpus_per_task=0), "cpus_per_task")])
def test_bad_ray_options(options, word):
    with pytest.raises(OptionError, match=word):
        RayOptions(**options)


def test_batch_on_ray_equals_local_batch(cluster, make_video, tmp_path, decode_video, model_folder):
    inputs = [make_video("a.mkv", size=(8, 6), frames=5), make_video("b.mp4", size=(6, 8), frames=4)]
    assert main(["batch", *map(str, inputs), "-o", str(tmp_path / "ray"), "--format", "mkv", "--ray", "-q",
                 "--model", model_folder, "--scale", "2", "--clip-frames", "4", "--steps", "2"]) == 0
    upscale_batch(inputs, tmp_path / "local", fmt="mkv", model=model_folder, scale=2, clip_frames=4, steps=2)
    for name in ("a.mkv", "b.mkv"):
        np.testing.assert_array_equal(decode_video(tmp_path / "ray" / name), decode_video(tmp_path / "local" / name))
