"""The pixel size of an image file, read from its header without decoding it, so that an image too large to
decode safely (a few hundred kB of PNG can hold 20000 x 20000 px, 1.2 GB once decoded) is refused before
OpenCV allocates it. Covers the formats poselive reads: JPEG, PNG, BMP, WebP, TIFF and PPM/PGM."""
from __future__ import annotations

import re
import struct

from poselive.errors import InputError

# The default limit: a 48-megapixel phone photo (8000 x 6000) passes; decoded as BGR it takes 144 MB.
MAX_IMAGE_PIXELS = 50_000_000


def pixel_limit(megapixels: float | None) -> int | None:
    """The pixel limit a --max-megapixels option gives: MAX_IMAGE_PIXELS when not given, none for 0."""
    if megapixels is None:
        return MAX_IMAGE_PIXELS
    if not megapixels >= 0:
        raise InputError(f"--max-megapixels {megapixels}: give a number of megapixels, or 0 for no limit")
    return int(megapixels * 1e6) if megapixels > 0 else None


_PNM = re.compile(rb"^P[1-6](?:\s+|#[^\n]*\n)+(\d+)(?:\s+|#[^\n]*\n)+(\d+)")


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 <= len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        # SOF0-15 carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    end = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(end + "I", data[4:8])
    if ifd + 2 > len(data):
        return None
    (n,) = struct.unpack(end + "H", data[ifd:ifd + 2])
    size = {}
    for k in range(n):
        entry = data[ifd + 2 + 12 * k: ifd + 14 + 12 * k]
        if len(entry) < 12:
            break
        tag, kind = struct.unpack(end + "HH", entry[:4])
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            size[tag] = struct.unpack(end + ("H" if kind == 3 else "I"), entry[8:10] if kind == 3 else entry[8:12])[0]
    return (size[256], size[257]) if len(size) == 2 else None


def image_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) in px from an image file's bytes (the whole file: a TIFF may keep its header at the
    end), or None when the format is not known here or the header is cut."""
    try:
        if head[:8] == b"\x89PNG\r\n\x1a\n":
            return struct.unpack(">II", head[16:24])
        if head[:2] == b"\xff\xd8":
            return _jpeg(head)
        if head[:2] == b"BM":
            w, h = struct.unpack("<ii", head[18:26])
            return abs(w), abs(h)  # a negative height marks a top-down bitmap
        if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
            kind = head[12:16]
            if kind == b"VP8 ":
                w, h = struct.unpack("<HH", head[26:30])
                return w & 0x3FFF, h & 0x3FFF
            if kind == b"VP8L":
                (bits,) = struct.unpack("<I", head[21:25])
                return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if kind == b"VP8X":
                return (int.from_bytes(head[24:27], "little") + 1, int.from_bytes(head[27:30], "little") + 1)
            return None
        if head[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff(head)
        if m := _PNM.match(head):
            return int(m.group(1)), int(m.group(2))
    except struct.error:  # a header cut short
        return None
    return None
