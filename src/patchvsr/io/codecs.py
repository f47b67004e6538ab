"""The video codecs `patchvsr upscale` writes, their containers and settings, and the check made before any work.

`--codec` picks one of CODECS (default: the container's, DEFAULT_CODEC); `--crf`, `--preset` and `--pix-fmt`
refine it. Every codec is set up so that a segment written by a fresh encoder starts on a keyframe, decodes
on its own and is the same bytes every time (resume and the segment writer rely on both): no B-frames (x264,
x265), no look-ahead or hidden alt-ref frames (VP9), no run-to-run varying rate control (x264's mbtree).
`check_encoder` encodes one frame of the output's size in memory with the settings of the run, so a
combination the encoder refuses is a one-line OptionError before the first frame is upscaled.
`h264_uint8` is an in-memory H.264 round trip (the compressed input of `patchvsr eval --lr-crf` and of the
realistic training degradation).
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from patchvsr.errors import OptionError
from patchvsr.io.hdr import HDRMetadata

# SVT-AV1 prints its configuration to stderr at every encoder start unless told otherwise (1 = errors only).
os.environ.setdefault("SVT_LOG", "1")

PRORES_PROFILES = {"proxy": 0, "lt": 1, "standard": 2, "hq": 3, "4444": 4, "4444xq": 5}


X26X_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")


@dataclass(frozen=True)
class Codec:
    """One `--codec` choice.

    containers: the output suffixes it may go in. pix_fmt / odd_pix_fmt: the default pixel format for even /
    odd frame sides (4:2:0 needs even ones); deep_pix_fmt / deep_odd_pix_fmt: those for inputs of more than
    8 bits (None: the encoder writes 8 bits only). crf: (lowest, highest, default) of its quality scale, None where
    it has none. presets: the `--preset` values it takes, `preset` the default (None: it has none).
    segment_format: the container of the intermediate segments: NUT, or MOV for ProRes (NUT does not take
    it; Matroska would round its timestamps to milliseconds).
    """

    name: str
    encoder: str
    label: str
    containers: tuple[str, ...]
    pix_fmt: str
    odd_pix_fmt: str
    crf: tuple[int, int, int] | None
    presets: tuple[str, ...] = ()
    preset: str | None = None
    segment_format: str = "nut"
    deep_pix_fmt: str | None = None
    deep_odd_pix_fmt: str | None = None

    def default_pix_fmt(self, width: int, height: int, deep: bool = False) -> str:
        """The default pixel format for a frame of width × height.

        Args:
            width (int): the frame's width in pixels.
            height (int): the frame's height in pixels.
            deep (bool, *optional*, defaults to False): an input of more than 8 bits per sample.

        Returns:
            str: `odd_pix_fmt` for an odd side, else `pix_fmt` (their deep versions for `deep`, where it has them).
        """
        odd = width % 2 or height % 2
        if deep and self.deep_pix_fmt:
            return self.deep_odd_pix_fmt if odd else self.deep_pix_fmt
        return self.odd_pix_fmt if odd else self.pix_fmt

    @property
    def writes_hdr(self) -> bool:
        """Whether the encoder writes HDR10 static metadata into the stream."""
        return self.name in ("hevc", "av1")

    def options(self, crf: int | None, preset: str | None, hdr: HDRMetadata | None = None) -> dict[str, str]:
        """The encoder's AVOptions for a resolved quality and preset (see `settings`), with the HDR10 metadata
        where it `writes_hdr`.

        Args:
            crf (int, *optional*): the quality, in the codec's `crf` range (None where it has none).
            preset (str, *optional*): one of the codec's `presets` (None where it has none).
            hdr (HDRMetadata, *optional*): the HDR10 metadata to write.

        Returns:
            dict[str, str]: the encoder's options.
        """
        if self.name == "h264":
            # no B-frames: segments concatenate with plain timestamps; no macroblock tree: in this x264 build
            # it depends on memory left over by other code, and resume needs bit-identical segments
            return {"crf": str(crf), "preset": preset, "bf": "0", "x264-params": "mbtree=0"}
        if self.name == "hevc":
            params = "bframes=0:log-level=error" + (f":{hdr.x265()}" if hdr else "")
            return {"crf": str(crf), "preset": preset, "x265-params": params}
        if self.name == "av1":
            return {"crf": str(crf), "preset": preset, **({"svtav1-params": hdr.svtav1()} if hdr else {})}
        if self.name == "vp9":  # no look-ahead, no hidden alt-ref frames: every packet is a shown frame
            return {"crf": str(crf), "b": "0", "deadline": "good", "cpu-used": preset, "row-mt": "1",
                    "lag-in-frames": "0", "auto-alt-ref": "0"}
        if self.name == "prores":
            return {"profile": str(PRORES_PROFILES[preset]), "vendor": "apl0"}
        return {"level": "3", "slices": "4", "slicecrc": "1"}  # ffv1


CODECS: dict[str, Codec] = {codec.name: codec for codec in (
    Codec("h264", "libx264", "H.264", ("mp4", "mkv", "mov"), "yuv420p", "yuv444p", (0, 51, 17), X26X_PRESETS,
          "fast", deep_pix_fmt="yuv420p10le", deep_odd_pix_fmt="yuv444p10le"),
    Codec("hevc", "libx265", "HEVC", ("mp4", "mkv", "mov"), "yuv420p", "yuv444p", (0, 51, 20), X26X_PRESETS,
          "fast", deep_pix_fmt="yuv420p10le", deep_odd_pix_fmt="yuv444p10le"),
    Codec("av1", "libsvtav1", "AV1", ("mp4", "mkv", "webm"), "yuv420p", "yuv420p", (0, 63, 28),
          tuple(str(p) for p in range(14)), "8", deep_pix_fmt="yuv420p10le", deep_odd_pix_fmt="yuv420p10le"),
    Codec("vp9", "libvpx-vp9", "VP9", ("webm", "mkv", "mp4"), "yuv420p", "yuv444p", (0, 63, 24),
          tuple(str(p) for p in range(9)), "4"),
    Codec("prores", "prores_ks", "ProRes", ("mov", "mkv"), "yuv422p10le", "yuv422p10le", None,
          tuple(PRORES_PROFILES), "hq", segment_format="mov", deep_pix_fmt="yuv422p10le",
          deep_odd_pix_fmt="yuv422p10le"),
    Codec("ffv1", "ffv1", "FFV1 lossless", ("mkv",), "bgr0", "bgr0", None, deep_pix_fmt="gbrp16le",
          deep_odd_pix_fmt="gbrp16le"),
)}
DEFAULT_CODEC = {"mkv": "ffv1", "mp4": "h264", "mov": "prores", "webm": "vp9"}
CONTAINERS = tuple(DEFAULT_CODEC)


@dataclass(frozen=True)
class Settings:
    """What `settings` resolved: the codec, its quality (None where it has no CRF), preset, pixel format and
    the HDR10 metadata it writes (None: none, or the codec cannot)."""

    codec: Codec
    crf: int | None
    preset: str | None
    pix_fmt: str
    hdr: HDRMetadata | None = None

    def options(self) -> dict[str, str]:
        """The encoder's options for these settings.

        Returns:
            dict[str, str]: libav codec options (CRF, preset, HDR parameters, ...).
        """
        return self.codec.options(self.crf, self.preset, self.hdr)

    @property
    def bits(self) -> int:
        """Bits per sample of the pixel format written."""
        return max(component.bits for component in av.VideoFormat(self.pix_fmt).components)

    def describe(self) -> str:
        """For the log: `HEVC crf 20 preset fast yuv420p`.

        Returns:
            str: the codec's label and the settings given.
        """
        parts = [self.codec.label]
        if self.crf is not None:
            parts.append(f"crf {self.crf}")
        if self.preset is not None:
            parts.append(f"preset {self.preset}")
        return " ".join(parts + [self.pix_fmt])


def settings(container: str, width: int, height: int, codec: str | None = None, crf: int | None = None,
             preset: str | None = None, pix_fmt: str | None = None, depth: int = 8,
             hdr: HDRMetadata | None = None) -> Settings:
    """Resolve and check the codec options of a `container` output of width × height.

    Args:
        container (str): the output container: mkv, mp4, mov or webm.
        width (int): the output width in pixels.
        height (int): the output height in pixels.
        codec (str, *optional*): a key of CODECS (default: the container's, DEFAULT_CODEC).
        crf (int, *optional*): the quality, in the codec's range (default: the codec's).
        preset (str, *optional*): one of the codec's presets (default: the codec's).
        pix_fmt (str, *optional*): a pixel format the encoder writes (default: the codec's for the size and depth).
        depth (int, *optional*, defaults to 8): the input's bits per sample.
        hdr (HDRMetadata, *optional*): the input's HDR10 metadata (kept where the codec can).

    Returns:
        Settings: the resolved settings.

    Raises:
        OptionError: for an unknown codec, one the container cannot hold, or a crf, preset or pixel format the
            codec does not take.
    """
    name = codec or DEFAULT_CODEC[container]
    if name not in CODECS:
        raise OptionError(f"unknown --codec {name!r}: choose one of {', '.join(CODECS)}")
    chosen = CODECS[name]
    if container not in chosen.containers:
        raise OptionError(f"--codec {name} cannot go into .{container}: use "
                          f"{' or '.join('.' + c for c in chosen.containers)}")
    if crf is not None and chosen.crf is None:
        raise OptionError(f"--crf does not apply to {chosen.label} (it has no quality scale)")
    if crf is not None and not chosen.crf[0] <= crf <= chosen.crf[1]:
        raise OptionError(f"--crf for {chosen.label} must be in [{chosen.crf[0]}, {chosen.crf[1]}], got {crf}")
    if preset is not None and preset not in chosen.presets:
        choices = ", ".join(chosen.presets) if chosen.presets else "none: it has no presets"
        raise OptionError(f"--preset {preset!r} is not one of {chosen.label}'s ({choices})")
    if pix_fmt is not None and pix_fmt not in _encoder_formats(chosen.encoder):
        raise OptionError(f"--pix-fmt {pix_fmt} is not one {chosen.label} writes: "
                          f"{', '.join(_encoder_formats(chosen.encoder))}")
    preset = preset or chosen.preset
    if pix_fmt is None and chosen.name == "prores" and preset.startswith("4444"):
        pix_fmt = "yuv444p10le"  # the 4444 profiles are 4:4:4
    crf = chosen.crf[2] if crf is None and chosen.crf else crf
    pix_fmt = pix_fmt or chosen.default_pix_fmt(width, height, deep=depth > 8)
    return Settings(chosen, crf, preset, pix_fmt, hdr if chosen.writes_hdr else None)


def _encoder_formats(encoder: str) -> tuple[str, ...]:
    return tuple(f.name for f in av.codec.Codec(encoder, "w").video_formats or ())


def check_encoder(chosen: Settings, width: int, height: int, fps: Fraction) -> None:
    """Encode one grey frame of the output's size in memory; OptionError naming the settings if the encoder
    refuses them (e.g. 4:2:0 of an odd size in HEVC).

    Args:
        chosen (Settings): the resolved settings.
        width (int): the output width in pixels.
        height (int): the output height in pixels.
        fps (Fraction): the output frame rate.

    Raises:
        OptionError: if the encoder refuses the settings.
    """
    trial = av.open(io.BytesIO(), "w", format=chosen.codec.segment_format)
    try:
        stream = add_encoder(trial, chosen, width, height, fps, 1 / fps)
        frame = av.VideoFrame(width, height, "rgb24")
        for plane in frame.planes:
            plane.update(bytes([128]) * plane.buffer_size)
        for packet in stream.encode(frame.reformat(format=chosen.pix_fmt)):
            trial.mux(packet)
        for packet in stream.encode():
            trial.mux(packet)
    except (av.error.FFmpegError, ValueError) as err:
        raise OptionError(f"{chosen.codec.label} refuses {chosen.describe()} at {width}x{height}: "
                          f"{getattr(err, 'strerror', None) or err}") from None
    finally:
        try:
            trial.close()
        except (av.error.FFmpegError, ValueError):
            pass


def add_encoder(container: av.container.OutputContainer, chosen: Settings, width: int, height: int,
                fps: Fraction, time_base: Fraction) -> av.video.stream.VideoStream:
    """A configured encoder stream of `chosen` in `container`.

    Args:
        container (av.container.OutputContainer): the container opened for writing.
        chosen (Settings): the resolved settings.
        width (int): the frame width in pixels.
        height (int): the frame height in pixels.
        fps (Fraction): the frame rate.
        time_base (Fraction): the timestamps' unit, for the stream and its codec.

    Returns:
        av.video.stream.VideoStream: the stream.
    """
    stream = container.add_stream(chosen.codec.encoder, rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, chosen.pix_fmt
    stream.codec_context.time_base = time_base
    stream.time_base = time_base
    stream.options = chosen.options()
    return stream


# x264's instruction sets up to AVX2 (its names). Its AVX-512 kernels (in the macroblock tree, which the
# presets enable) read memory they have not written: on AVX-512 CPUs (AMD Zen 4, Intel Xeon) 1-3 % of
# identical round trips decoded differently, up to 66 levels in a frame; capped at AVX2, 600 of 600 were equal.
X264_UP_TO_AVX2 = "MMX2,SSE,SSE2,SSE3,SSSE3,SSE4.1,SSE4.2,AVX,FMA3,AVX2,LZCNT,BMI1,BMI2"


@functools.cache
def has_avx512(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """Whether the CPU has AVX-512 (the `avx512f` flag in Linux's cpuinfo; False where it cannot be read).

    Args:
        cpuinfo (str, *optional*, defaults to "/proc/cpuinfo"): the file to read.

    Returns:
        bool: True if some CPU's flags name avx512f.
    """
    try:
        with open(cpuinfo) as handle:
            return any(line.startswith("flags") and " avx512f" in line for line in handle)
    except OSError:
        return False


def h264_uint8(pixels: np.ndarray, crf: int, preset: str = "veryfast") -> np.ndarray:
    """RGB frames through libx264 (yuv420p, `crf`, `preset`, one thread) and back; the same output on every
    call (x264 capped at AVX2 on AVX-512 CPUs, see X264_UP_TO_AVX2).

    Odd sizes (and sides below 16) are padded by edge replication for the encoder and cropped.

    Args:
        pixels (np.ndarray): (T, h, w, 3) uint8 RGB.
        crf (int): x264's quality, 0-51.
        preset (str, *optional*, defaults to "veryfast"): x264's preset.

    Returns:
        np.ndarray: (T, h, w, 3) uint8 RGB, decoded.
    """
    height, width = pixels.shape[1:3]
    padded = np.pad(pixels, ((0, 0), (0, max(16, height + height % 2) - height),
                             (0, max(16, width + width % 2) - width), (0, 0)), mode="edge")
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = padded.shape[2], padded.shape[1], "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset, "threads": "1",
                          **({"x264-params": f"asm={X264_UP_TO_AVX2}"} if has_avx512() else {})}
        for frame in padded:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    buffer.seek(0)
    with av.open(buffer, mode="r") as container:
        decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.ascontiguousarray(np.stack(decoded)[:, :height, :width])
