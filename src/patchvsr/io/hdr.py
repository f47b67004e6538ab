"""HDR10 static metadata: the mastering display and the content light level, read from a decoded frame's side
data and handed to the encoders that write them into the stream (x265 and SVT-AV1 as SEI / metadata OBUs).

The side data are FFmpeg's structs, read as int32s: AVMasteringDisplayMetadata is 3 primaries (R, G, B) and
the white point as (x, y) rationals, min and max luminance as rationals, then has_primaries, has_luminance;
AVContentLightMetadata is MaxCLL, MaxFALL (cd/m²).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from fractions import Fraction

import av
from av.sidedata.sidedata import Type

Point = tuple[Fraction, Fraction]


@dataclass(frozen=True)
class HDRMetadata:
    """primaries: (R, G, B) chromaticities (x, y); white: the white point; luminance: (min, max) in cd/m²;
    light: (MaxCLL, MaxFALL) in cd/m². Each part None where the input does not have it."""

    primaries: tuple[Point, Point, Point] | None = None
    white: Point | None = None
    luminance: tuple[Fraction, Fraction] | None = None
    light: tuple[int, int] | None = None

    @classmethod
    def from_frame(cls, frame: av.VideoFrame) -> "HDRMetadata | None":
        """The frame's HDR10 static metadata, or None if it carries none."""
        display = frame.side_data.get(Type.MASTERING_DISPLAY_METADATA)
        light = frame.side_data.get(Type.CONTENT_LIGHT_LEVEL)
        primaries = white = luminance = None
        if display is not None and display.buffer_size >= 88:
            values = struct.unpack("22i", bytes(memoryview(display))[:88])
            ratios = [Fraction(values[i], values[i + 1] or 1) for i in range(0, 20, 2)]
            if values[20]:
                primaries = ((ratios[0], ratios[1]), (ratios[2], ratios[3]), (ratios[4], ratios[5]))
                white = (ratios[6], ratios[7])
            if values[21]:
                luminance = (ratios[8], ratios[9])
        if light is not None and light.buffer_size >= 8:
            max_cll, max_fall = struct.unpack("2I", bytes(memoryview(light))[:8])
            light = (max_cll, max_fall)
        found = cls(primaries, white, luminance, light if light and any(light) else None)
        return found if found != cls() else None

    def x265(self) -> str:
        """x265-params entries: `master-display=G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)` in x265's units (0.00002
        and 0.0001 cd/m²), `max-cll=MaxCLL,MaxFALL`."""
        entries = ["hdr10=1"]
        if self.primaries and self.white and self.luminance:
            red, green, blue = self.primaries
            points = "".join(f"{name}({round(x * 50000)},{round(y * 50000)})"
                             for name, (x, y) in (("G", green), ("B", blue), ("R", red), ("WP", self.white)))
            entries.append(f"master-display={points}L({round(self.luminance[1] * 10000)},"
                           f"{round(self.luminance[0] * 10000)})")
        if self.light:
            entries.append(f"max-cll={self.light[0]},{self.light[1]}")
        return ":".join(entries)

    def svtav1(self) -> str:
        """svtav1-params entries: `mastering-display=G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)` as decimals,
        `content-light=MaxCLL,MaxFALL`."""
        entries = []
        if self.primaries and self.white and self.luminance:
            red, green, blue = self.primaries
            points = "".join(f"{name}({float(x):.5f},{float(y):.5f})"
                             for name, (x, y) in (("G", green), ("B", blue), ("R", red), ("WP", self.white)))
            entries.append(f"mastering-display={points}L({float(self.luminance[1]):.4f},"
                           f"{float(self.luminance[0]):.4f})")
        if self.light:
            entries.append(f"content-light={self.light[0]},{self.light[1]}")
        return ":".join(entries)

    def describe(self) -> str:
        parts = []
        if self.luminance:
            parts.append(f"mastering display {float(self.luminance[0]):g}-{float(self.luminance[1]):g} cd/m²")
        if self.light:
            parts.append(f"MaxCLL {self.light[0]}, MaxFALL {self.light[1]}")
        return ", ".join(parts) or "HDR10"
