"""The web app's PNG icons, drawn from the shapes of static/favicon.svg.

    python tools/icons.py        # writes static/icons/*.png

The project has no image library, and the icons are a rounded square with a camera in
it, so this draws them itself: exact coverage along each row, eight rows per pixel,
written as an 8-bit RGBA PNG with zlib. The output is the same bytes on every run, and
tests/test_web_app.py checks that the committed files are what this script draws.
"""

from __future__ import annotations

import math
import struct
import sys
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "static" / "icons"
BACKGROUND = (0x1D, 0x5C, 0x63)  # the favicon's fill, also the manifest's theme colour
GLYPH = (0xFF, 0xFF, 0xFF)
VIEW = 32.0  # the favicon's viewBox
CORNER = 7.0
ROWS_PER_PIXEL = 8

# name -> (size in pixels, rounded corners). Android wants 192 and 512 ("any"), and a
# full-bleed "maskable" one that it cuts to its own shape; iOS takes a full square of
# 180 (apple-touch-icon) and rounds it itself (transparent corners would turn black).
# The camera's farthest corner is 0.34 of the width from the centre: inside the 0.4
# circle a maskable icon must keep clear, so the same drawing serves every purpose.
ICONS = {
    "icon-192.png": (192, True),
    "icon-512.png": (512, True),
    "icon-maskable-192.png": (192, False),
    "icon-maskable-512.png": (512, False),
    "apple-touch-icon.png": (180, False),
}


def _rounded_square(y: float, corner: float) -> list[tuple[float, float]]:
    """The span of the background at height y (in viewBox units)."""
    if corner == 0:
        return [(0.0, VIEW)]
    dy = max(corner - y, y - (VIEW - corner), 0.0)
    inset = corner - math.sqrt(max(corner * corner - dy * dy, 0.0))
    return [(inset, VIEW - inset)]


def _camera(y: float) -> list[tuple[float, float]]:
    """The favicon's path "M7 11h12v10H7zM19 14l6-4v12l-6-4z" as spans at height y."""
    spans = []
    if 11 <= y < 21:
        spans.append((7.0, 19.0))
    if 10 <= y < 22:
        left = 25 - (y - 10) * 1.5 if y < 14 else 19 + (y - 18) * 1.5 if y > 18 else 19.0
        spans.append((left, 25.0))
    return spans


def _add_row(coverage: list[float], spans: list[tuple[float, float]], scale: float) -> None:
    """Add each span's exact overlap with every pixel column, weighted for one sub-row."""
    weight = 1.0 / ROWS_PER_PIXEL
    for start, end in spans:
        start, end = start * scale, end * scale
        for column in range(int(start), min(math.ceil(end), len(coverage))):
            overlap = min(end, column + 1) - max(start, column)
            if overlap > 0:
                coverage[column] += overlap * weight


def draw(size: int, rounded: bool) -> bytes:
    """The icon as PNG bytes."""
    scale = size / VIEW
    corner = CORNER if rounded else 0.0
    rows = []
    for row in range(size):
        shape, glyph = [0.0] * size, [0.0] * size
        for sub in range(ROWS_PER_PIXEL):
            y = (row + (sub + 0.5) / ROWS_PER_PIXEL) / scale
            _add_row(shape, _rounded_square(y, corner), scale)
            _add_row(glyph, _camera(y), scale)
        pixels = bytearray()
        for alpha, white in zip(shape, glyph, strict=True):
            white = min(white, 1.0)
            colour = (round(b + (g - b) * white) for b, g in zip(BACKGROUND, GLYPH, strict=True))
            pixels += bytes((*colour, round(min(alpha, 1.0) * 255)))
        rows.append(b"\x00" + bytes(pixels))  # filter type 0 for each row
    return _png(size, b"".join(rows))


def _png(size: int, raw: bytes) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)  # 8-bit RGBA
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def main() -> None:
    OUT.mkdir(exist_ok=True)
    for name, (size, rounded) in ICONS.items():
        (OUT / name).write_bytes(draw(size, rounded))
        print(f"{OUT / name}: {size}x{size}", file=sys.stderr)


if __name__ == "__main__":
    main()
