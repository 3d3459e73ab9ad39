"""Draw ozkernels' own kernel logos (PNG 32 and 64 px, SVG) with the standard library only.

The mark: a ring (an environment) on a rounded teal tile with a small orange moon (its kernel).
Run `python scripts/draw_logos.py` to rewrite ozkernels/logos/; the output is deterministic, and a
test checks the shipped files are exactly what this script draws.
"""

from __future__ import annotations

import argparse
import math
import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "ozkernels" / "logos"
TILE = (15, 92, 115)
RING = (255, 255, 255)
MOON = (243, 156, 18)
# Geometry on a 64-unit canvas.
CORNER = 14.0
RING_C, RING_R, RING_W = (29.0, 35.0), 17.0, 7.0
MOON_C, MOON_R = (48.5, 15.5), 8.0
SAMPLES = 4


def in_tile(x: float, y: float) -> bool:
    """Whether a point of the 64-unit canvas lies on the rounded tile."""
    cx = min(max(x, CORNER), 64 - CORNER)
    cy = min(max(y, CORNER), 64 - CORNER)
    return (x - cx) ** 2 + (y - cy) ** 2 <= CORNER ** 2


def colour_at(x: float, y: float) -> tuple[int, int, int, int]:
    """RGBA of one sample point."""
    if math.dist((x, y), MOON_C) <= MOON_R:
        return (*MOON, 255)
    if not in_tile(x, y):
        return (0, 0, 0, 0)
    if abs(math.dist((x, y), RING_C) - RING_R) <= RING_W / 2:
        return (*RING, 255)
    return (*TILE, 255)


def pixels(size: int) -> bytes:
    """Raw RGBA rows (each with PNG's filter byte), supersampled SAMPLES x SAMPLES."""
    scale, rows = 64 / size, bytearray()
    for py in range(size):
        rows.append(0)
        for px in range(size):
            acc = [0, 0, 0, 0]
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    r, g, b, a = colour_at((px + (sx + 0.5) / SAMPLES) * scale,
                                           (py + (sy + 0.5) / SAMPLES) * scale)
                    acc = [acc[0] + r * a, acc[1] + g * a, acc[2] + b * a, acc[3] + a]
            alpha = acc[3]
            n = SAMPLES * SAMPLES
            rgb = [round(c / alpha) if alpha else 0 for c in acc[:3]]
            rows += bytes([*rgb, round(alpha / n)])
    return bytes(rows)


def chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk with its CRC."""
    return struct.pack(">I", len(data)) + kind + data + \
        struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(size: int) -> bytes:
    """A size x size RGBA PNG of the mark."""
    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(pixels(size), 9)) + chunk(b"IEND", b""))


def svg() -> str:
    """The same mark as SVG."""
    hexa = "#{:02x}{:02x}{:02x}".format
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">\n'
        f'  <rect width="64" height="64" rx="{CORNER:g}" fill="{hexa(*TILE)}"/>\n'
        f'  <circle cx="{RING_C[0]:g}" cy="{RING_C[1]:g}" r="{RING_R:g}" fill="none" '
        f'stroke="{hexa(*RING)}" stroke-width="{RING_W:g}"/>\n'
        f'  <circle cx="{MOON_C[0]:g}" cy="{MOON_C[1]:g}" r="{MOON_R:g}" fill="{hexa(*MOON)}"/>\n'
        "</svg>\n"
    )


def drawn() -> dict[str, bytes]:
    """Every logo file by name."""
    return {"logo-32x32.png": png(32), "logo-64x64.png": png(64),
            "logo-svg.svg": svg().encode()}


def main() -> None:
    """Write the logos into ozkernels/logos (or --out)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for name, data in drawn().items():
        (out / name).write_bytes(data)
        print(out / name)


if __name__ == "__main__":
    main()
