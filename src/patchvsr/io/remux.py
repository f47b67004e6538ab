"""Assemble the final file: the segments' video packets and the input's audio, copied without re-encoding.

Audio streams are copied packet for packet where the output container accepts their codec (checked by
writing a header into memory); otherwise they are re-encoded, losslessly to FLAC for `.mkv` and to AAC
for `.mp4`, and a log line says so. Video and audio packets are interleaved by time as they are copied,
so memory stays bounded. The input's title, the streams' language and title, and the video rotation
(display matrix) are carried over.
"""

from __future__ import annotations

import heapq
import io
import logging
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

import av

from patchvsr.io.probe import VideoInfo, open_video
from patchvsr.io.writer import OutputSpec

log = logging.getLogger(__name__)

FALLBACK_AUDIO = {"mkv": "flac", "mp4": "aac", "mov": "aac", "webm": "libopus"}
APPLE_TAGS = {"hevc": "hvc1"}  # the sample entry QuickTime and Safari play (FFmpeg's default hev1 they do not)
CONTAINER_KEYS_KEPT = ("title", "comment", "description", "artist", "album", "date", "copyright", "genre")
STREAM_KEYS_KEPT = ("language", "title")


def assemble(final: Path, spec: OutputSpec, segments: list[Path], info: VideoInfo) -> None:
    """Write `final` (.mkv, .mp4, .mov or .webm) from the `segments` in order plus the audio of `info.path`."""
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
            audio = _audio_plan(source, output, spec.kind) if source else []
            for stream, packet in _interleave(_video_packets(segments), _audio_packets(source, audio)):
                packet.stream = stream if stream is not None else video
                output.mux(packet)
            for _, target, encoder in audio:
                if encoder:
                    output.mux(target.encode(None))
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


def _audio_plan(source, output, kind: str) -> list[tuple]:
    """For each input audio stream: (input stream, output stream, re-encode?)."""
    plan = []
    for stream in source.streams.audio:
        if _container_accepts(output.format.name, Path(source.name), stream.index):
            target, encode = output.add_stream_from_template(stream), False
        else:
            codec = FALLBACK_AUDIO[kind]
            log.info("audio stream %d: %s cannot go into .%s; re-encoded to %s", stream.index,
                     stream.codec_context.name, kind, codec)
            target = output.add_stream(codec, rate=stream.codec_context.sample_rate)
            layout = stream.codec_context.layout
            # an unordered "N channels" layout gets the usual one for N (AAC needs a known layout)
            target.layout = f"{layout.nb_channels}c" if layout.name.endswith("channels") else layout
            encode = True
        _copy_metadata(stream, target.metadata, STREAM_KEYS_KEPT)
        plan.append((stream, target, encode))
    return plan


def _container_accepts(format_name: str, path: Path, index: int) -> bool:
    """Whether the muxer takes audio stream `index` of `path` as it is: tried on a small file in memory
    (header, the stream's first packets, trailer: some muxers only object when writing the trailer)."""
    with open_video(path) as source:
        trial = av.open(io.BytesIO(), "w", format=format_name)
        try:
            stream = source.streams[index]
            target = trial.add_stream_from_template(stream)
            for packet in islice(source.demux(stream), 4):
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


def _audio_packets(source, plan) -> Iterator[tuple[float, av.stream.Stream, av.Packet]]:
    if not plan:
        return
    targets = {stream.index: (target, encode) for stream, target, encode in plan}
    for packet in source.demux(*[stream for stream, _, _ in plan]):
        target, encode = targets[packet.stream.index]
        if not encode:
            if packet.dts is not None:
                yield float(packet.dts * packet.time_base), target, packet
            continue
        for frame in packet.decode():
            for encoded in target.encode(frame):
                yield float(encoded.dts * encoded.time_base), target, encoded


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
