"""A cheap walk over an image's container structure before any decoder sees it.

Pillow's open and load loops handle each JPEG segment, PNG chunk, GIF block and TIFF strip in
Python, and libjpeg runs every scan of a progressive JPEG over every block of the image, however
few bytes the scan takes. The cost of those inputs grows with their structure, not their pixels,
so it is bounded here: each walk stops at the first limit crossed, so it costs at most the limit's
worth of steps (the bytes between markers are skipped in C). What the walk learns that the
decoders' memory depends on (a JPEG's coefficient buffer, a TIFF's strip count) goes to the cost
model in `faces.images`.

Bytes the walk cannot follow are left to Pillow, which refuses them as it always has: this module
only ever refuses what is well-formed enough to be expensive.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

# GIF: Pillow joins an extension's sub-blocks (comments, XMP) with `bytes +=`, which is quadratic.
GIF_MAX_EXTENSION_BYTES = 256 * 1024
# PNG: Pillow inflates each compressed text chunk (up to 1 MB) while opening: 64 of them, 64 KB
# together, took 0.23 s.
PNG_MAX_COMPRESSED_TEXT_CHUNKS = 8
# TIFF: numeric tag values Pillow turns into Python ints while opening (a colour map of a 16-bit
# palette, 3 x 65536, is the largest any ordinary file carries).
TIFF_MAX_NUMERIC_VALUES = 262_144


@dataclass(frozen=True)
class Limits:
    max_scans: int  # JPEG scans
    max_scan_pixels: int  # JPEG scans x frame pixels: the work of a progressive decode
    max_blocks: int  # JPEG segments, PNG chunks, GIF sub-blocks, TIFF entries and strips or tiles
    max_metadata_blocks: int  # JPEG APPn and COM segments, PNG ancillary chunks, GIF extensions


@dataclass(frozen=True)
class Structure:
    """What decoding will cost beyond the pixels Pillow reports."""

    # Bytes libjpeg holds for the whole image's DCT coefficients when a JPEG has several scans
    # (progressive): at full size whatever the draft scale, 2 bytes a coefficient.
    coefficient_bytes: int = 0
    # Strips or tiles: Pillow plans one Python tile per strip of a raw TIFF.
    tiles: int = 0


class TooComplex(Exception):
    """Well-formed, but more structure than any image needs: the reason says which limit."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def inspect(data: bytes, image_format: str, *, limits: Limits) -> Structure:
    walker = _WALKERS.get(image_format)
    if walker is None:
        return Structure()
    try:
        return walker(data, limits)
    except (IndexError, struct.error):  # truncated inside a header: Pillow says what is wrong
        return Structure()


# --- JPEG ------------------------------------------------------------------------------------------

_ENTROPY_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")  # a marker, not a stuffed byte or a restart
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_PROGRESSIVE_SOF = {0xC2, 0xC6, 0xCA, 0xCE}


def _jpeg(data: bytes, limits: Limits) -> Structure:
    position, segments, metadata, scans = 2, 0, 0, 0
    pixels = 0
    progressive = False
    components: list[tuple[int, int]] = []
    width = height = 0
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            break  # not where a marker must be: Pillow's or libjpeg's to judge
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:  # end of image (an MPO's further pictures are never decoded)
            break
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            position += 2
            continue
        length = struct.unpack_from(">H", data, position + 2)[0]
        segments += 1
        if segments > limits.max_blocks:
            raise TooComplex(f"more than {limits.max_blocks} JPEG segments")
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:
            metadata += 1
            if metadata > limits.max_metadata_blocks:
                raise TooComplex(f"more than {limits.max_metadata_blocks} JPEG metadata segments (APPn, COM)")
        elif marker in _SOF and not width:
            progressive = marker in _PROGRESSIVE_SOF
            height, width, count = struct.unpack_from(">HHB", data, position + 5)
            pixels = width * height
            components = [(data[position + 11 + 3 * i] >> 4, data[position + 11 + 3 * i] & 15) for i in range(count)]
        position += 2 + length
        if marker == 0xDA:
            scans += 1
            if scans > limits.max_scans:
                raise TooComplex(f"more than {limits.max_scans} JPEG scans")
            if scans * pixels > limits.max_scan_pixels:
                raise TooComplex(f"{scans} JPEG scans of {width}x{height} pixels are more decoding work than "
                                 f"this server allows ({limits.max_scan_pixels} scan-pixels)")
            found = _ENTROPY_END.search(data, position)
            if found is None:
                break
            position = found.start()
    coefficients = 0
    if (progressive or scans > 1) and components:
        max_h = max(h for h, _ in components) or 1
        max_v = max(v for _, v in components) or 1
        for h, v in components:
            # libjpeg pads each component to whole MCUs: blocks of 8x8 coefficients, 2 bytes each.
            blocks_wide = -(-width // (8 * max_h)) * h
            blocks_high = -(-height // (8 * max_v)) * v
            coefficients += blocks_wide * blocks_high * 64 * 2
    return Structure(coefficient_bytes=coefficients)


# --- PNG -------------------------------------------------------------------------------------------

_PNG_DATA_CHUNKS = {b"IDAT", b"fdAT", b"fcTL"}  # image data and APNG frames, not metadata


def _png(data: bytes, limits: Limits) -> Structure:
    position, chunks, metadata, compressed_text = 8, 0, 0, 0
    while position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        chunks += 1
        if chunks > limits.max_blocks:
            raise TooComplex(f"more than {limits.max_blocks} PNG chunks")
        if kind[0] & 0x20 and kind not in _PNG_DATA_CHUNKS:  # ancillary
            metadata += 1
            if metadata > limits.max_metadata_blocks:
                raise TooComplex(f"more than {limits.max_metadata_blocks} PNG ancillary chunks")
        if kind == b"zTXt" or (kind == b"iTXt" and _itxt_compressed(data, position + 8, length)):
            compressed_text += 1
            if compressed_text > PNG_MAX_COMPRESSED_TEXT_CHUNKS:
                raise TooComplex(f"more than {PNG_MAX_COMPRESSED_TEXT_CHUNKS} compressed PNG text chunks")
        if kind == b"IEND":
            break
        position += 12 + length
    return Structure()


def _itxt_compressed(data: bytes, start: int, length: int) -> bool:
    keyword_end = data.find(b"\x00", start, start + min(length, 80))
    return keyword_end >= 0 and data[keyword_end + 1:keyword_end + 2] == b"\x01"


# --- GIF -------------------------------------------------------------------------------------------

def _gif(data: bytes, limits: Limits) -> Structure:
    flags = data[10]
    position = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    extensions = extension_bytes = 0
    # Only what precedes the first image is read in Python (Pillow decodes that frame alone).
    while position < len(data) and data[position] == 0x21:
        extensions += 1
        if extensions > limits.max_metadata_blocks:
            raise TooComplex(f"more than {limits.max_metadata_blocks} GIF extension blocks")
        position += 2
        while position < len(data) and data[position]:
            extension_bytes += data[position]
            if extension_bytes > GIF_MAX_EXTENSION_BYTES:
                raise TooComplex(f"GIF extension blocks of more than {GIF_MAX_EXTENSION_BYTES // 1024} KB")
            position += 1 + data[position]
        position += 1
    return Structure()


# --- TIFF ------------------------------------------------------------------------------------------

_TIFF_NUMERIC = {3: 2, 4: 4, 5: 8, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}  # type: size
_TIFF_OFFSETS = {273, 324}  # StripOffsets, TileOffsets


def _tiff(data: bytes, limits: Limits) -> Structure:
    order = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack_from(order + "I", data, 4)[0]
    entries = struct.unpack_from(order + "H", data, ifd)[0]
    if entries > limits.max_blocks:
        raise TooComplex(f"more than {limits.max_blocks} TIFF tags")
    tiles = values = 0
    for index in range(entries):
        tag, kind, count = struct.unpack_from(order + "HHI", data, ifd + 2 + 12 * index)
        if kind in _TIFF_NUMERIC:
            values += count
            if values > TIFF_MAX_NUMERIC_VALUES:
                raise TooComplex(f"TIFF tags of more than {TIFF_MAX_NUMERIC_VALUES} values")
        if tag in _TIFF_OFFSETS:
            tiles = max(tiles, count)
            if count > limits.max_blocks:
                raise TooComplex(f"more than {limits.max_blocks} TIFF strips or tiles")
    return Structure(tiles=tiles)


_WALKERS = {"JPEG": _jpeg, "PNG": _png, "GIF": _gif, "TIFF": _tiff}
