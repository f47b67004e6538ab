"""Probe an input, a video file FFmpeg decodes or a folder of numbered PNG frames, and refuse bad ones.

`probe` opens the input, decodes its first frame (size, rotation, colours), then demuxes every packet
once without decoding, to count frames, tell constant from variable frame rate and notice files that end
early. Frame counts are hints: a container's header may count hidden frames (VP9 alt-refs in AVI) or empty
placeholder chunks, and a cut file holds fewer frames than it declares; the reader decodes what is there
and warns once when that differs from the hint. A file from which no video frame decodes, and every other
problem, is an `InputError` with a one-line message naming the file.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

from patchvsr.errors import InputError, OptionError
from patchvsr.io.hdr import HDRMetadata
from patchvsr.io.span import Cut, Span, resolve

DEFAULT_FOLDER_FPS = Fraction(25)
PNG_NUMBER = re.compile(r"(\d+)(?!.*\d)")  # the last run of digits in a file name


@dataclass(frozen=True)
class VideoInfo:
    """What the reader and writer need to know about an input.

    frames: the expected frame count, a hint for progress (the header's count if it has one, else the video
    packets counted; PNG files for a folder); the reader's count is final.
    header_frames: the frame count the container declares (None if it declares none).
    damage: why the file looks cut short or damaged (None if it does not); the frames present are still read.
    time_base: unit of the timestamps the reader yields: 1/fps for constant frame rate (timestamps are
    frame numbers from `first_pts`), the stream's own for variable frame rate (timestamps are kept).
    color: the stream's colour tags (`colorspace`, `color_range`, `color_primaries`, `color_trc`).
    cut: the part of the video to upscale (`patchvsr.io.span`; None: all of it); `frames` then counts its frames.
    bit_depth: bits per sample of the decoded video (8 for PNG folders); hdr: its HDR10 static metadata.
    """

    path: Path
    folder: bool
    width: int
    height: int
    frames: int
    fps: Fraction
    vfr: bool
    time_base: Fraction
    first_pts: int = 0
    codec: str = "png"
    container: str = "png folder"
    audio_streams: int = 0
    rotation: int = 0
    title: str | None = None
    language: str | None = None
    sample_aspect_ratio: Fraction | None = None
    color: dict = field(default_factory=dict)
    png_files: tuple[Path, ...] = ()
    header_frames: int | None = None
    damage: str | None = None
    cut: Cut | None = None
    bit_depth: int = 8
    hdr: HDRMetadata | None = None

    def describe(self) -> str:
        """For the log: size, frame count, rate, bit depth, audio streams and the part taken.

        Returns:
            str: one line.
        """
        rate = f"{float(self.fps):.3f} fps" + (" (variable)" if self.vfr else "")
        audio = f", {self.audio_streams} audio" if self.audio_streams else ""
        part = f" of {self.cut.span.describe()}" if self.cut else ""
        depth = f" {self.bit_depth}-bit" if self.bit_depth != 8 else ""
        hdr = f", HDR10 ({self.hdr.describe()})" if self.hdr else ""
        return f"{self.path.name}: {self.container}/{self.codec} {self.width}x{self.height}{depth}, " \
               f"{self.frames} frames{part}, {rate}{audio}{hdr}"


def probe(path: str | Path, fps: Fraction | None = None, span: Span | None = None) -> VideoInfo:
    """Inspect an input.

    Args:
        path (str or Path): a video file or a folder of numbered PNG frames.
        fps (Fraction, *optional*): the rate of a PNG folder, in (0, 1000] (default 25); None for video files.
        span (Span, *optional*): the part to upscale (None: all of it).

    Returns:
        VideoInfo: what the reader and writer need to know.

    Raises:
        InputError: for a missing, empty or unreadable input.
        OptionError: for `fps` out of range or given for a video file, or a span that holds no frame.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        fps = Fraction(fps) if fps is not None else DEFAULT_FOLDER_FPS
        if not 0 < fps <= 1000:
            raise OptionError(f"--fps must be in (0, 1000], got {fps}")
        return _probe_folder(path, fps, span)
    if fps is not None:
        raise OptionError(f"{path}: --fps is only for PNG folders; a video file keeps its own frame rate")
    if path.stat().st_size == 0:
        raise InputError(f"{path}: file is empty (0 bytes)")
    return _probe_file(path, span)


def open_video(path: Path) -> av.container.InputContainer:
    """Open a video file for reading, with FFmpeg's failure turned into an InputError.

    Args:
        path (Path): the video file.

    Returns:
        av.container.InputContainer: the open container.

    Raises:
        InputError: if FFmpeg cannot open it.
    """
    with ffmpeg_errors() as logs:
        try:
            return av.open(str(path), metadata_errors="ignore")
        except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
            errors = error_lines(logs)
            reason = errors[-1] if errors else getattr(err, "strerror", None) or str(err)
            if "moov atom not found" in reason:
                reason += ": the file is incomplete or truncated"
            raise InputError(f"{path}: not a video FFmpeg can read ({reason})") from err


@contextmanager
def ffmpeg_errors() -> Iterator[list[tuple[int, str, str]]]:
    """Capture FFmpeg's log (instead of dropping it) while the block runs; see `error_lines`.

    Yields:
        list[tuple[int, str, str]]: the captured (level, name, message) entries, filled while the block runs.
    """
    level = av.logging.get_level()
    av.logging.set_level(av.logging.ERROR)
    try:
        with av.logging.Capture() as logs:
            yield logs
    finally:
        av.logging.set_level(level)


def error_lines(logs: list[tuple[int, str, str]]) -> list[str]:
    """The error messages among captured FFmpeg log entries.

    Args:
        logs (list[tuple[int, str, str]]): (level, name, message) entries from `ffmpeg_errors`.

    Returns:
        list[str]: the messages of level ERROR or worse, stripped, in order.
    """
    return [text.strip() for level, _, text in logs if level <= av.logging.ERROR]


def video_stream(path: Path, container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The first video stream that is not a cover picture; InputError if there is none.

    Args:
        path (Path): the file, for the message.
        container (av.container.InputContainer): the open container.

    Returns:
        av.video.stream.VideoStream: the stream.

    Raises:
        InputError: if there is no such stream.
    """
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    what = "audio only" if container.streams.audio else "no streams FFmpeg can use"
    raise InputError(f"{path}: has no video stream ({what})")


def _probe_file(path: Path, span: Span | None) -> VideoInfo:
    with open_video(path) as container:
        stream = video_stream(path, container)
        first = _first_frame(path, container, stream)
        fps = _frame_rate(stream)
        scan = _scan_packets(path, stream.index)
        pts = scan.pts
        vfr = _is_variable(pts, fps, stream.time_base)
        first_pts = int(pts[0]) if len(pts) else 0
        codec_context = stream.codec_context
        cut = resolve(span, pts, stream.time_base, fps, path.name) if span and len(pts) else None
        return VideoInfo(
            path=path, folder=False, width=first.width, height=first.height,
            frames=cut.frames if cut else scan.declared or len(pts), header_frames=scan.declared, cut=cut,
            damage=scan.damage, fps=fps, vfr=vfr,
            time_base=stream.time_base if vfr else 1 / fps,
            first_pts=first_pts if vfr else round(first_pts * stream.time_base * fps),
            codec=codec_context.name, container=container.format.name.split(",")[0],
            audio_streams=len(container.streams.audio), rotation=int(first.rotation or 0),
            title=container.metadata.get("title"), language=stream.metadata.get("language"),
            sample_aspect_ratio=stream.sample_aspect_ratio,
            color={"colorspace": int(first.colorspace), "color_range": int(first.color_range),
                   "color_primaries": int(codec_context.color_primaries),
                   "color_trc": int(codec_context.color_trc)},
            bit_depth=max(component.bits for component in first.format.components),
            hdr=HDRMetadata.from_frame(first),
        )


def _first_frame(path: Path, container, stream) -> av.VideoFrame:
    try:
        for frame in container.decode(stream):
            return frame
    except av.error.FFmpegError as err:
        raise InputError(f"{path}: cannot decode its video ({err.strerror or err})") from err
    raise InputError(f"{path}: has no decodable video frame")


def _frame_rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and 0 < rate < 1000:
            return Fraction(rate)
    return DEFAULT_FOLDER_FPS


@dataclass(frozen=True)
class _PacketScan:
    pts: np.ndarray        # sorted timestamps of the video packets that hold data
    declared: int | None   # the container's frame count, if it states one
    damage: str | None     # why the file looks cut short or damaged


def _scan_packets(path: Path, video_index: int) -> _PacketScan:
    """Demux every packet once; a demuxer error ends the scan and is kept as the damage, not raised. The last
    few scans are kept, keyed by the file's inode, size and change times: probing the same file again
    (`preview` does, for its moment) does not demux it again."""
    stat = path.stat()
    return _scan_file(str(path.resolve()), (stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns),
                      video_index)


@functools.lru_cache(maxsize=4)
def _scan_file(path: str, version: tuple[int, ...], video_index: int) -> _PacketScan:
    """`_scan_packets` of the file as it is (`version` only keys the cache)."""
    ends: dict[int, Fraction] = {}
    pts_list: list[int] = []
    damage = None
    with ffmpeg_errors() as logs, open_video(Path(path)) as container:
        declared = container.streams[video_index].frames or None
        duration = container.duration
        try:
            for packet in container.demux():
                if packet.size == 0:  # end-of-stream marker or an empty placeholder chunk
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if packet.stream.index == video_index:
                    pts_list.append(stamp if stamp is not None else len(pts_list))
                if stamp is not None and packet.time_base is not None:
                    end = (stamp + (packet.duration or 0)) * packet.time_base
                    ends[packet.stream.index] = max(end, ends.get(packet.stream.index, end))
        except av.error.FFmpegError as err:
            damage = f"the file is unreadable after {len(pts_list)} video packets ({err.strerror or err})"
    errors = error_lines(logs)
    damage = damage or (f"the file is damaged ({errors[0]})" if errors else None) or _cut_short(ends, duration)
    pts = np.sort(np.asarray(pts_list, dtype=np.int64))
    pts.flags.writeable = False  # shared by the probes that hit the cache
    return _PacketScan(pts, declared, damage)


def _cut_short(ends: dict[int, Fraction], duration: int | None) -> str | None:
    """Streams that stop well before the container's recorded duration mean a cut file: say where."""
    if not duration or not ends:
        return None
    declared = Fraction(duration, av.time_base)
    reached = max(ends.values())
    if reached < declared * Fraction(9, 10) - Fraction(1, 10):
        return f"the file is cut short: its streams end at {float(reached):.2f} s of {float(declared):.2f} s recorded"
    return None


def _is_variable(pts: np.ndarray, fps: Fraction, time_base: Fraction) -> bool:
    """True when frame times stray from a constant rate by more than a tick and 2 % of a frame period."""
    if len(pts) < 3:
        return False
    period = 1 / (fps * time_base)  # frame period in ticks
    expected = pts[0] + np.arange(len(pts)) * float(period)
    tolerance = max(1.0, 0.02 * float(period))
    return bool(np.abs(pts - expected).max() > tolerance)


def _probe_folder(path: Path, fps: Fraction, span: Span | None) -> VideoInfo:
    files = numbered_pngs(path)
    try:
        with Image.open(files[0]) as image:
            width, height = image.size
    except OSError as err:
        raise InputError(f"{files[0]}: not a readable PNG ({err})") from err
    cut = resolve(span, np.arange(len(files)), 1 / fps, fps, path.name) if span else None
    return VideoInfo(path=path, folder=True, width=width, height=height, frames=cut.frames if cut else len(files),
                     fps=fps, vfr=False, time_base=1 / fps, png_files=tuple(files), cut=cut)


def numbered_pngs(path: Path) -> list[Path]:
    """The folder's PNG files ordered by the last number in their names; InputError if none or ambiguous.

    Args:
        path (Path): the folder.

    Returns:
        list[Path]: the PNG files, by frame number.

    Raises:
        InputError: for a PNG without a number, two with one number, or none.
    """
    numbered: dict[int, Path] = {}
    for file in path.iterdir():
        if file.suffix.lower() != ".png" or not file.is_file():
            continue
        match = PNG_NUMBER.search(file.stem)
        if match is None:
            raise InputError(f"{file}: PNG without a frame number in its name")
        number = int(match.group(1))
        if number in numbered:
            raise InputError(f"{path}: two PNG files have frame number {number}: "
                             f"{numbered[number].name}, {file.name}")
        numbered[number] = file
    if not numbered:
        raise InputError(f"{path}: folder holds no PNG frames")
    return [numbered[n] for n in sorted(numbered)]
