"""HDR10 static metadata: the mastering display and the content light level, read from a decoded frame's side
data and handed to the encoders that write them into the stream (x265 and SVT-AV1 as SEI / metadata OBUs).

The side data are FFmpeg's structs, read as int32s: AVMasteringDisplayMetadata is 3 primaries (R, G, B) and
the white point as (x, y) rationals, min and max luminance as rationals, then has_primaries, has_luminance;
AVContentLightMetadata is MaxCLL, MaxFALL (cd/m²).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
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
        """The frame's HDR10 static metadata, or None if it carries none.

        Args:
            frame (av.VideoFrame): a decoded frame, with its side data.

        Returns:
            HDRMetadata or None: the metadata found, None if the frame carries none.
        """
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
        and 0.0001 cd/m²), `max-cll=MaxCLL,MaxFALL`.

        Returns:
            str: the entries joined by `:`, starting with `hdr10=1`.
        """
        display = self._display(lambda v: str(round(v * 50000)), lambda v: str(round(v * 10000)))
        return ":".join(["hdr10=1", *([f"master-display={display}"] if display else []),
                         *([f"max-cll={self.light[0]},{self.light[1]}"] if self.light else [])])

    def svtav1(self) -> str:
        """svtav1-params entries: `mastering-display=G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)` as decimals,
        `content-light=MaxCLL,MaxFALL`.

        Returns:
            str: the entries joined by `:` (empty without metadata).
        """
        display = self._display(lambda v: f"{float(v):.5f}", lambda v: f"{float(v):.4f}")
        return ":".join([*([f"mastering-display={display}"] if display else []),
                         *([f"content-light={self.light[0]},{self.light[1]}"] if self.light else [])])

    def _display(self, chromaticity: Callable[[Fraction], str], luminance: Callable[[Fraction], str]) -> str | None:
        """`G(x,y)B(x,y)R(x,y)WP(x,y)L(max,min)` in the encoder's number formats; None without a full display."""
        if not (self.primaries and self.white and self.luminance):
            return None
        red, green, blue = self.primaries
        points = "".join(f"{name}({chromaticity(x)},{chromaticity(y)})"
                         for name, (x, y) in (("G", green), ("B", blue), ("R", red), ("WP", self.white)))
        return f"{points}L({luminance(self.luminance[1])},{luminance(self.luminance[0])})"

    def describe(self) -> str:
        """For the log: the mastering display's luminance range and MaxCLL / MaxFALL.

        Returns:
            str: e.g. `mastering display 0.005-1000 cd/m², MaxCLL 1000, MaxFALL 400`.
        """
        parts = []
        if self.luminance:
            parts.append(f"mastering display {float(self.luminance[0]):g}-{float(self.luminance[1]):g} cd/m²")
        if self.light:
            parts.append(f"MaxCLL {self.light[0]}, MaxFALL {self.light[1]}")
        return ", ".join(parts) or "HDR10"
