"""Synthetic camera motion: short HR clips rendered from one still photo.

A clip is a smooth camera path over the photo (pan with a little acceleration, zoom, small rotation, all
sub-pixel), optionally with an elliptical object cut from elsewhere in the photo that moves on its own path,
so that neighbouring frames carry complementary sub-pixel information and temporal modelling pays off.
Rendering is antialiased: the needed photo region is first reduced by the camera scale with Lanczos
(PIL), then each frame is one Lanczos-4 affine warp (OpenCV) at a scale near 1.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch
from PIL import Image

from patchvsr.sizes import HW


@dataclass(frozen=True)
class ClipConfig:
    """How clips are synthesised. Sizes in output pixels, speeds per frame, angles in degrees."""

    frames: int = 8
    size: int = 192
    max_scale: float = 3.0  # photo pixels per output pixel, drawn log-uniformly in [1, max_scale]
    max_pan: float = 3.0
    max_zoom: float = 0.02  # log-scale change per frame
    max_rotation: float = 4.0
    max_spin: float = 0.4
    static_share: float = 0.1
    object_share: float = 0.35
    min_energy: float = 0.035  # mean luma gradient magnitude (per pixel, luma in [0, 1]) of frame 0
    tries: int = 12

    def __post_init__(self) -> None:
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.size < 16:
            raise ValueError(f"size must be >= 16, got {self.size}")
        if self.max_scale < 1.0:
            raise ValueError(f"max_scale must be >= 1, got {self.max_scale}")
        for name in ("static_share", "object_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.tries < 1:
            raise ValueError(f"tries must be >= 1, got {self.tries}")


@dataclass(frozen=True)
class CameraPath:
    """Frame t shows the photo around centre + scale·(pan·t + accel·t²/2) at scale·exp(zoom·t),
    rotated by rotation + spin·t degrees (mirrored first if `flip`). Centre in photo pixels."""

    center: tuple[float, float]
    scale: float
    pan: tuple[float, float]
    accel: tuple[float, float]
    zoom: float
    rotation: float
    spin: float
    flip: bool


@dataclass(frozen=True)
class MovingObject:
    """An ellipse (semi-axes in output px) textured from photo region `source` (photo px), centred at
    start + velocity·t in output px, turning by spin°/frame and scaling by exp(zoom·t)."""

    source: tuple[float, float]
    axes: tuple[float, float]
    start: tuple[float, float]
    velocity: tuple[float, float]
    rotation: float
    spin: float
    zoom: float


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator, dtype=torch.float64))


def _chance(generator: torch.Generator, share: float) -> bool:
    return float(torch.rand((), generator=generator, dtype=torch.float64)) < share


def _sample_scale(generator: torch.Generator, photo_hw: HW, config: ClipConfig) -> float:
    limit = min(config.max_scale, min(photo_hw) / (config.size * 1.6))
    return math.exp(_uniform(generator, 0.0, math.log(max(limit, 1.0))))


def _displacements(path: CameraPath, frames: int) -> np.ndarray:
    """(frames, 2) centre offsets in photo px from frame 0."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    return path.scale * (np.array(path.pan) * t + 0.5 * np.array(path.accel) * t**2)


def _radii(path: CameraPath, frames: int, size: int) -> np.ndarray:
    """(frames,) half-diagonal of each frame's footprint in photo px (covers any rotation), plus margin."""
    t = np.arange(frames, dtype=np.float64)
    return path.scale * np.exp(path.zoom * t) * size * math.sqrt(0.5) + 4.0 * path.scale


def sample_camera(generator: torch.Generator, photo_hw: HW, config: ClipConfig) -> CameraPath | None:
    """A random camera path whose every frame lies inside the photo, or None if this draw does not fit.

    Args:
        generator (torch.Generator): the clip's generator.
        photo_hw (HW): (H, W) of the photo.
        config (ClipConfig): the clip settings.

    Returns:
        CameraPath or None: the path (centre (x, y) in photo px), or None.
    """
    scale = _sample_scale(generator, photo_hw, config)
    moving = not _chance(generator, config.static_share)
    speed = config.max_pan * _uniform(generator, 0.0, 1.0) * moving
    angle = _uniform(generator, 0.0, 2.0 * math.pi)
    path = CameraPath(
        center=(0.0, 0.0), scale=scale, pan=(speed * math.cos(angle), speed * math.sin(angle)),
        accel=(_uniform(generator, -0.15, 0.15) * moving, _uniform(generator, -0.15, 0.15) * moving),
        zoom=_uniform(generator, -config.max_zoom, config.max_zoom) * moving,
        rotation=_uniform(generator, -config.max_rotation, config.max_rotation),
        spin=_uniform(generator, -config.max_spin, config.max_spin) * moving,
        flip=_chance(generator, 0.5))
    offsets, radii = _displacements(path, config.frames), _radii(path, config.frames, config.size)
    low = np.max(radii[:, None] - offsets, axis=0)  # (2,) x, y
    high = np.array(photo_hw[::-1], dtype=np.float64) - 1.0 - np.max(radii[:, None] + offsets, axis=0)
    if np.any(high < low):
        return None
    center = tuple(_uniform(generator, lo, hi) for lo, hi in zip(low, high))
    return CameraPath(**{**asdict(path), "center": center})


def sample_object(generator: torch.Generator, photo_hw: HW, scale: float,
                  config: ClipConfig) -> MovingObject:
    """A random moving object whose texture comes from anywhere in the photo.

    Args:
        generator (torch.Generator): the clip's generator.
        photo_hw (HW): (H, W) of the photo.
        scale (float): the camera's photo px per output px.
        config (ClipConfig): the clip settings.

    Returns:
        MovingObject: source (x, y) in photo px; axes, start, velocity (x, y) in output px.
    """
    axes = (config.size * _uniform(generator, 0.12, 0.3), config.size * _uniform(generator, 0.12, 0.3))
    reach = max(axes) * scale * 1.5 + 4.0 * scale
    source = tuple(_uniform(generator, min(reach, n / 2), max(n - 1 - reach, n / 2)) for n in photo_hw[::-1])
    speed, angle = _uniform(generator, 0.5, 4.0), _uniform(generator, 0.0, 2.0 * math.pi)
    return MovingObject(
        source=source, axes=axes,
        start=(config.size * _uniform(generator, 0.2, 0.8), config.size * _uniform(generator, 0.2, 0.8)),
        velocity=(speed * math.cos(angle), speed * math.sin(angle)),
        rotation=_uniform(generator, 0.0, 360.0), spin=_uniform(generator, -2.0, 2.0),
        zoom=_uniform(generator, -0.02, 0.02))


def _reduced_region(photo: np.ndarray, center: tuple[float, float], reach: np.ndarray,
                    scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop photo around `center` ± reach (x, y photo px), reduce it by `scale` (Lanczos).

    Returns (region (h, w, 3) float32 in [0, 255], origin (2,) photo px of the crop, factor (2,) photo px
    per region px, per axis)."""
    photo_h, photo_w = photo.shape[:2]
    x0, y0 = (max(0, math.floor(c - r)) for c, r in zip(center, reach))
    x1, y1 = min(photo_w, math.ceil(center[0] + reach[0]) + 1), min(photo_h, math.ceil(center[1] + reach[1]) + 1)
    crop = photo[y0:y1, x0:x1]
    size = (max(1, round((x1 - x0) / scale)), max(1, round((y1 - y0) / scale)))
    if size != (x1 - x0, y1 - y0):
        crop = np.asarray(Image.fromarray(crop).resize(size, Image.Resampling.LANCZOS))
    factor = np.array([(x1 - x0) / size[0], (y1 - y0) / size[1]])
    return crop.astype(np.float32), np.array([x0, y0], dtype=np.float64), factor


def _rotation(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])


def _warp(region: np.ndarray, linear: np.ndarray, offset: np.ndarray, size: int) -> np.ndarray:
    """Output pixel p samples region at linear·p + offset (Lanczos-4). Returns (size, size, 3) float32."""
    matrix = np.concatenate([linear, offset[:, None]], axis=1).astype(np.float64)
    return cv2.warpAffine(region, matrix, (size, size), flags=cv2.INTER_LANCZOS4 | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT_101)


def render_camera(photo: np.ndarray, path: CameraPath, frames: int, size: int,
                  first_only: bool = False) -> np.ndarray:
    """Render the frames a camera path sees.

    Args:
        photo (np.ndarray): (H, W, 3) uint8 RGB.
        path (CameraPath): the camera path (from `sample_camera`).
        frames (int): frames to render, >= 1.
        size (int): side S of the square output frames, px.
        first_only (bool, *optional*, defaults to False): render frame 0 only.

    Returns:
        np.ndarray: (frames, S, S, 3) float32 in about [0, 255] (Lanczos rings), or (1, S, S, 3) with
        `first_only`.
    """
    offsets, radii = _displacements(path, frames), _radii(path, frames, size)
    reach = np.abs(offsets).max(axis=0) + radii.max()
    region, origin, factor = _reduced_region(photo, path.center, reach, path.scale)
    flip = np.diag([-1.0, 1.0]) if path.flip else np.eye(2)
    middle = np.full(2, (size - 1) / 2.0)
    out = []
    for t in range(1 if first_only else frames):
        photo_linear = path.scale * math.exp(path.zoom * t) * _rotation(path.rotation + path.spin * t) @ flip
        center = np.array(path.center) + offsets[t]
        linear = photo_linear / factor[:, None]
        offset = (center - origin + 0.5) / factor - 0.5 - linear @ middle
        out.append(_warp(region, linear, offset, size))
    return np.stack(out)


def composite_object(frames: np.ndarray, photo: np.ndarray, obj: MovingObject, scale: float) -> np.ndarray:
    """Paste the moving object over the frames, antialiased 1-px edge. In place.

    Args:
        frames (np.ndarray): (T, S, S, 3) float32 in [0, 255], changed in place.
        photo (np.ndarray): (H, W, 3) uint8 RGB, the texture's source.
        obj (MovingObject): the object (from `sample_object`).
        scale (float): the camera's photo px per output px.

    Returns:
        np.ndarray: `frames` itself.
    """
    size = frames.shape[1]
    reach = np.full(2, max(obj.axes) * scale * 1.5 + 4.0 * scale)
    texture, origin, factor = _reduced_region(photo, obj.source, reach, scale)
    texture_center = (np.array(obj.source) - origin + 0.5) / factor - 0.5
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    for t in range(frames.shape[0]):
        grow = math.exp(obj.zoom * t)
        turn = _rotation(obj.rotation + obj.spin * t)
        position = np.array(obj.start) + np.array(obj.velocity) * t
        linear = turn.T / grow * (scale / factor)[:, None]  # output px -> texture px
        offset = texture_center - linear @ position
        layer = _warp(texture, linear, offset, size)
        local = np.einsum("ij,jhw->ihw", turn.T / grow, np.stack([xs - position[0], ys - position[1]]))
        radius = np.hypot(local[0] / obj.axes[0], local[1] / obj.axes[1])
        alpha = np.clip((1.0 - radius) * min(obj.axes) * grow + 0.5, 0.0, 1.0)[..., None].astype(np.float32)
        frames[t] = alpha * layer + (1.0 - alpha) * frames[t]
    return frames


def gradient_energy(frame: np.ndarray) -> float:
    """Mean luma gradient magnitude, luma in [0, 1].

    Args:
        frame (np.ndarray): (H, W, 3) in [0, 255], any dtype.

    Returns:
        float: per pixel, >= 0.
    """
    luma = frame[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255.0
    gy, gx = np.gradient(luma)
    return float(np.mean(np.hypot(gx, gy)))


def synthesize_clip(photo: np.ndarray, generator: torch.Generator,
                    config: ClipConfig) -> tuple[np.ndarray, dict]:
    """One clip from one photo.

    Textured placements are preferred: up to `config.tries` draws, the first with energy >= min_energy wins,
    else the most textured draw.

    Args:
        photo (np.ndarray): (H, W, 3) uint8 RGB, min(H, W) >= 1.6·size.
        generator (torch.Generator): the clip's generator.
        config (ClipConfig): the clip settings.

    Returns:
        tuple[np.ndarray, dict]: (clip (frames, size, size, 3) uint8 RGB, record of the motion parameters and
        the frame-0 gradient energy).

    Raises:
        ValueError: if no draw fits the photo (too small).
    """
    best: tuple[float, CameraPath] | None = None
    for _ in range(config.tries):
        path = sample_camera(generator, photo.shape[:2], config)
        if path is None:
            continue
        energy = gradient_energy(render_camera(photo, path, config.frames, config.size, first_only=True)[0])
        if best is None or energy > best[0]:
            best = (energy, path)
        if energy >= config.min_energy:
            break
    if best is None:
        raise ValueError(f"photo of shape {photo.shape} is too small for {config.size}-px clips")
    energy, path = best
    frames = render_camera(photo, path, config.frames, config.size)
    obj = sample_object(generator, photo.shape[:2], path.scale, config) if _chance(
        generator, config.object_share) else None
    if obj is not None:
        composite_object(frames, photo, obj, path.scale)
    clip = np.clip(np.rint(frames), 0, 255).astype(np.uint8)
    record = {"energy": round(energy, 5), "camera": asdict(path), "object": asdict(obj) if obj else None}
    return clip, record


def fits(photo_hw: HW, config: ClipConfig) -> bool:
    """Whether clips of `config.size` can be cut from a photo of this size without upscaling it.

    Args:
        photo_hw (HW): (H, W) of the photo.
        config (ClipConfig): the clip settings.

    Returns:
        bool: True if min(H, W) >= 1.6·size.
    """
    return min(photo_hw) >= config.size * 1.6


def footage_clip(frames: np.ndarray, generator: torch.Generator,
                 config: ClipConfig) -> tuple[np.ndarray, dict]:
    """One clip cut from real footage: `config.frames` consecutive frames (played forwards or backwards) of a
    random `config.size`-px square, mirrored for half the clips.

    Args:
        frames (np.ndarray): (N, H, W, 3) uint8 RGB, N >= config.frames, min(H, W) >= config.size.
        generator (torch.Generator): the clip's generator.
        config (ClipConfig): the clip settings.

    Returns:
        tuple[np.ndarray, dict]: (clip (frames, size, size, 3) uint8 RGB, contiguous; record of the cut).

    Raises:
        ValueError: if the footage is too short or too small.
    """
    count, height, width = frames.shape[:3]
    if count < config.frames or min(height, width) < config.size:
        raise ValueError(f"footage of {count} frames of {width}x{height} is too small for {config.frames}-frame "
                         f"{config.size}-px clips")
    start = int(torch.randint(0, count - config.frames + 1, (), generator=generator))
    y0 = int(torch.randint(0, height - config.size + 1, (), generator=generator))
    x0 = int(torch.randint(0, width - config.size + 1, (), generator=generator))
    backwards, flip = _chance(generator, 0.5), _chance(generator, 0.5)
    clip = frames[start:start + config.frames, y0:y0 + config.size, x0:x0 + config.size]
    clip = clip[::-1] if backwards else clip
    clip = np.ascontiguousarray(clip[:, :, ::-1] if flip else clip)
    record = {"energy": round(gradient_energy(clip[0]), 5),
              "footage": {"start": start, "y0": y0, "x0": x0, "backwards": backwards, "flip": flip}}
    return clip, record
