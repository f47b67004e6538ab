"""Video input and output: probe, streaming reader, segment writer, remux, resumable output runs."""

from patchvsr.io.probe import VideoInfo, probe
from patchvsr.io.reader import Frame, read_frames
from patchvsr.io.target import output_kind, output_size
from patchvsr.io.writer import OutputSpec

__all__ = ["Frame", "OutputSpec", "VideoInfo", "output_kind", "output_size", "probe", "read_frames"]
