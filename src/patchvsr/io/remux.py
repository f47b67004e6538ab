"""Assemble the final file: the segments' video packets and the input's other streams, copied where possible.

Audio and subtitle streams are copied packet for packet where the output container accepts their codec
(checked by writing a header into memory); otherwise audio is re-encoded, losslessly to FLAC for `.mkv`, to
AAC for `.mp4`/`.mov` and to Opus for `.webm`, and text subtitles are converted (to mov_text for `.mp4`/`.mov`,
WebVTT for `.webm`, ASS for `.mkv`); a log line says so, and says what cannot be carried at all (picture
subtitles in a container without them, attachments outside `.mkv`, data streams). Chapters are copied, and
attachments (fonts of ASS subtitles) into `.mkv`. For a part of the video (`VideoInfo.cut`) audio packets,
subtitle cues and chapters are kept where they start inside it (a cue or chapter running into it is kept from
its start) and shifted like the frames. Packets are interleaved by time as they are copied, so memory stays
bounded. The input's title, the streams' language and title, and the video rotation (display
matrix) are carried over.
"""

from __future__ import annotations

import heapq
import io
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from patchvsr.io.probe import VideoInfo, open_video
from patchvsr.io.span import Cut
from patchvsr.io.writer import OutputSpec

log = logging.getLogger(__name__)

FALLBACK_AUDIO = {"mkv": "flac", "mp4": "aac", "mov": "aac", "webm": "libopus"}
FALLBACK_SUBTITLES = {"mkv": "ass", "mp4": "mov_text", "mov": "mov_text", "webm": "webvtt"}
TEXT_SUBTITLES = ("subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text")
SUBTITLE_TIME_BASE = Fraction(1, 1000)
APPLE_TAGS = {"hevc": "hvc1"}  # the sample entry QuickTime and Safari play (FFmpeg's default hev1 they do not)
CONTAINER_KEYS_KEPT = ("title", "comment", "description", "artist", "album", "date", "copyright", "genre")
STREAM_KEYS_KEPT = ("language", "title")


@dataclass
class Carried:
    """One input stream on its way into the output: `how` is "copy" (packets as they are), "encode" (decoded
    audio, re-encoded) or "convert" (decoded text subtitles, re-encoded)."""

    source: av.stream.Stream
    target: av.stream.Stream
    how: str


def assemble(final: Path, spec: OutputSpec, segments: list[Path], info: VideoInfo) -> None:
    """Write `final` (.mkv, .mp4, .mov or .webm) from the `segments` in order plus the other streams, chapters
    and attachments of `info.path`.

    Args:
        final (Path): the file to write.
        spec (OutputSpec): the video output (its kind, codec, rate and rotation).
        segments (list[Path]): the encoded segments, in order, at least one.
        info (VideoInfo): the probed input (its streams, cut and metadata are carried over).

    Raises:
        InputError: if the input or a segment cannot be opened.
    """
    source = None if info.folder else open_video(info.path)
    try:
        with av.open(str(final), "w") as output:
            _copy_metadata(source, output.metadata, CONTAINER_KEYS_KEPT)
            with open_video(segments[0]) as first:
                video = _stream_like(output, first.streams.video[0])
            video.codec_context.framerate = spec.fps
            if spec.kind in ("mp4", "mov") and spec.codec.codec.name in APPLE_TAGS:
                video.codec_tag = APPLE_TAGS[spec.codec.codec.name]
            if info.language:
                video.metadata["language"] = info.language
            if spec.rotation:
                video.set_display_rotation(spec.rotation)
            carried = _plan(source, output, spec.kind) if source else []
            window = _Window.of(info.cut, info.first_pts * info.time_base) if info.cut else None
            if source is not None:
                _copy_chapters_and_attachments(source, output, spec.kind, window)
            for stream, packet in _interleave(_video_packets(segments), _carried_packets(source, carried, window)):
                packet.stream = stream if stream is not None else video
                output.mux(packet)
            for item in carried:
                if item.how == "encode":
                    output.mux(item.target.encode(None))
    finally:
        if source is not None:
            source.close()


def _stream_like(output, template):
    """A stream copying `template`'s codec parameters; opaque where PyAV cannot open the codec by the
    template's name (AV1 decoded by libdav1d, which is no encoder)."""
    try:
        return output.add_stream_from_template(template)
    except av.codec.codec.UnknownCodecError:
        return output.add_stream_from_template(template, opaque=True)


def _plan(source, output, kind: str) -> list[Carried]:
    """What becomes of each audio and subtitle stream of the input (and a log line for each one changed or
    left out, and for data streams, which are never carried)."""
    plan = []
    streams = [*source.streams.audio, *source.streams.subtitles]
    accepted = _accepted_streams(output.format.name, Path(source.name), [stream.index for stream in streams])
    for stream in streams:
        codec = stream.codec_context.name if stream.codec_context else "unknown"
        if stream.index in accepted:
            item = Carried(stream, output.add_stream_from_template(stream), "copy")
        elif stream.type == "audio":
            item = Carried(stream, _audio_encoder(output, stream, FALLBACK_AUDIO[kind]), "encode")
            log.info("audio stream %d: %s cannot go into .%s; re-encoded to %s", stream.index, codec, kind,
                     FALLBACK_AUDIO[kind])
        elif codec in TEXT_SUBTITLES:
            item = Carried(stream, _subtitle_encoder(output, stream, FALLBACK_SUBTITLES[kind]), "convert")
            log.info("subtitle stream %d: %s cannot go into .%s; converted to %s", stream.index, codec, kind,
                     FALLBACK_SUBTITLES[kind])
        else:
            log.info("subtitle stream %d: %s cannot go into .%s and is no text format to convert; left out",
                     stream.index, codec, kind)
            continue
        _copy_metadata(stream, item.target.metadata, STREAM_KEYS_KEPT)
        item.target.disposition = stream.disposition
        plan.append(item)
    for stream in source.streams.data:
        log.info("data stream %d (%s) is not carried into the output", stream.index,
                 stream.metadata.get("handler_name", "no name"))
    return plan


def _audio_encoder(output, stream, codec: str):
    target = output.add_stream(codec, rate=stream.codec_context.sample_rate)
    layout = stream.codec_context.layout
    # an unordered "N channels" layout gets the usual one for N (AAC needs a known layout)
    target.layout = f"{layout.nb_channels}c" if layout.name.endswith("channels") else layout
    return target


def _subtitle_encoder(output, stream, codec: str):
    """A text-subtitle encoder fed with the input stream's cues (ASS events, FFmpeg's common form)."""
    target = output.add_stream(codec)
    target.codec_context.time_base = target.time_base = SUBTITLE_TIME_BASE
    header = stream.codec_context.subtitle_header
    target.codec_context.subtitle_header = header or DEFAULT_ASS_HEADER
    return target


# What FFmpeg's text-subtitle decoders write when an input brings no styles of its own.
DEFAULT_ASS_HEADER = (
    b"[Script Info]\nScriptType: v4.00+\nPlayResX: 384\nPlayResY: 288\n\n[V4+ Styles]\nFormat: Name, Fontname, "
    b"Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, Underline, StrikeOut, "
    b"ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, MarginV, "
    b"Encoding\nStyle: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\n\n"
    b"[Events]\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\n")


@dataclass(frozen=True)
class _Window:
    """A cut in the input's clock: the kept part is [low, high) seconds (high None: to the end); what is kept
    moves back by `offset` seconds."""

    low: Fraction
    high: Fraction | None
    offset: Fraction

    @classmethod
    def of(cls, cut: Cut, video_start: Fraction) -> "_Window":
        low = video_start + cut.offset
        return cls(low, None if cut.length is None else low + cut.length, cut.offset)

    def interval(self, begin: Fraction, end: Fraction) -> tuple[Fraction, Fraction] | None:
        """[begin, end) in the input's clock -> its part inside the window in the output's clock, or None; a
        moment (end <= begin) is kept if it lies inside."""
        if end <= begin:
            inside = self.low <= begin and (self.high is None or begin < self.high)
            return (begin - self.offset, begin - self.offset) if inside else None
        if end <= self.low or self.high is not None and begin >= self.high:
            return None
        end = end if self.high is None else min(end, self.high)
        return max(begin, self.low) - self.offset, end - self.offset

    def shift(self, packet: av.Packet, clip: bool) -> av.Packet | None:
        """A copied packet moved to the output's clock (None if outside): audio as a moment at its start,
        subtitle cues (`clip`) as the interval they show, cut to the window."""
        if packet.pts is None:
            return None
        begin = packet.pts * packet.time_base
        placed = self.interval(begin, begin + (packet.duration or 0) * packet.time_base if clip else begin)
        if placed is None:
            return None
        delta = packet.pts - round(placed[0] / packet.time_base)
        packet.pts -= delta
        if packet.dts is not None:
            packet.dts -= delta
        if clip and packet.duration:
            packet.duration = round((placed[1] - placed[0]) / packet.time_base)
        return packet


def _chapter_in(chapter: dict, window: _Window) -> dict | None:
    time_base = chapter["time_base"]
    placed = window.interval(chapter["start"] * time_base, chapter["end"] * time_base)
    if placed is None or placed[1] <= placed[0]:
        return None
    return {**chapter, "start": round(placed[0] / time_base), "end": round(placed[1] / time_base)}


def _copy_chapters_and_attachments(source, output, kind: str, window: _Window | None) -> None:
    chapters = source.chapters()
    if window is not None:
        chapters = [_chapter_in(chapter, window) for chapter in chapters]
        chapters = [chapter for chapter in chapters if chapter is not None]
    if chapters:
        output.set_chapters(chapters)
    for stream in source.streams.attachments:
        if kind == "mkv":
            output.add_attachment(stream.name, stream.mimetype, stream.data)
        else:
            log.info("attachment %s: .%s cannot hold attachments; left out (use .mkv to keep it)",
                     stream.name, kind)


def _accepted_streams(format_name: str, path: Path, indices: list[int], packets: int = 4) -> set[int]:
    """The streams of `path` (by index) that the muxer takes as they are: each tried on a small file in memory
    (header, the stream's first packets, trailer: some muxers only object when writing the trailer). One pass
    over the input collects the first packets of all of them."""
    if not indices:
        return set()
    with open_video(path) as source:
        first: dict[int, list[av.Packet]] = {index: [] for index in indices}
        for packet in source.demux(*(source.streams[index] for index in indices)):
            kept = first[packet.stream.index]
            if len(kept) < packets:
                kept.append(packet)
            if all(len(collected) == packets for collected in first.values()):
                break
        return {index for index in indices if _muxes(format_name, source.streams[index], first[index])}


def _muxes(format_name: str, stream, packets: list[av.Packet]) -> bool:
    trial = av.open(io.BytesIO(), "w", format=format_name)
    try:
        target = trial.add_stream_from_template(stream)
        for packet in packets:
            if packet.dts is not None:
                packet.stream = target
                trial.mux(packet)
        trial.close()
        return True
    except (av.error.FFmpegError, ValueError):
        return False


def _video_packets(segments: list[Path]) -> Iterator[tuple[float, None, av.Packet]]:
    """Packets of the segments in order, one segment open at a time. NUT leaves H.264's decode times
    unset; without B-frames they equal the presentation times."""
    for segment in segments:
        with open_video(segment) as container:
            for packet in container.demux(container.streams.video[0]):
                if packet.pts is None:
                    continue  # the demuxer's end-of-stream marker
                if packet.dts is None:
                    packet.dts = packet.pts
                yield float(packet.dts * packet.time_base), None, packet


def _carried_packets(source, plan: list[Carried],
                     window: _Window | None) -> Iterator[tuple[float, av.stream.Stream, av.Packet]]:
    if not plan:
        return
    targets = {item.source.index: item for item in plan}
    for packet in source.demux(*[item.source for item in plan]):
        item = targets[packet.stream.index]
        subtitle = item.source.type == "subtitle"
        if item.how != "encode" and window is not None and packet.size:
            packet = window.shift(packet, clip=subtitle)
            if packet is None:
                continue
        if item.how == "copy":
            if packet.dts is not None:
                yield float(packet.dts * packet.time_base), item.target, packet
        elif item.how == "encode":
            for frame in _frames_in(packet.decode(), window):
                for encoded in item.target.encode(frame):
                    yield float(encoded.dts * encoded.time_base), item.target, encoded
        elif packet.pts is not None:
            converted = _converted_cue(packet, item)
            if converted is not None:
                yield float(converted.pts * converted.time_base), item.target, converted


def _frames_in(frames, window: _Window | None):
    """Decoded audio frames inside the window, moved to the output's clock (all of them without one)."""
    for frame in frames:
        if window is not None:
            if frame.pts is None or window.interval(frame.pts * frame.time_base, Fraction(0)) is None:
                continue
            frame.pts -= round(window.offset / frame.time_base)
        yield frame


def _converted_cue(packet: av.Packet, item: Carried) -> av.Packet | None:
    """The cue of one text-subtitle packet re-encoded for `item.target` (times in SUBTITLE_TIME_BASE)."""
    cue = item.source.codec_context.decode2(packet)
    encoded = None if cue is None else item.target.codec_context.encode_subtitle(cue)
    if encoded is None:
        return None
    encoded.pts = encoded.dts = round(packet.pts * packet.time_base / SUBTITLE_TIME_BASE)
    encoded.duration = round((packet.duration or 0) * packet.time_base / SUBTITLE_TIME_BASE)
    encoded.time_base = SUBTITLE_TIME_BASE
    return encoded


def _interleave(*streams) -> Iterator[tuple]:
    """Merge (time, stream, packet) iterators by time; ties keep video first."""
    for _, stream, packet in heapq.merge(*streams, key=lambda item: item[0]):
        yield stream, packet


def _copy_metadata(source, target: dict, keys: tuple[str, ...]) -> None:
    if source is None:
        return
    for key, value in source.metadata.items():
        if key.lower() in keys:
            target[key.lower()] = value
