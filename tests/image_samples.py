"""Hand-made image bytes the tests need: real encoders, plus a PNG that lies about its size."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG header claiming width x height with one tiny compressed row: a decompression bomb."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(
        b"IEND", b"")


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real 16x16 JPEG whose frame header claims width x height: a few hundred bytes."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (120, 90, 60)).save(buffer, "JPEG", quality=50)
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, frame + 5, height, width)
    return bytes(data)


def encoded(color: tuple[int, int, int], fmt: str, size: tuple[int, int] = (8, 6)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format=fmt)
    return buffer.getvalue()


# --- crafted inputs whose cost is not their pixels ----------------------------------------------------

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def progressive_jpeg_repeating_last_scan(size: tuple[int, int], repeats: int, *, mode: str = "RGB") -> bytes:
    """A real progressive JPEG whose last scan is sent `repeats` more times: libjpeg only warns,
    and runs every copy over every block of the image."""
    buffer = io.BytesIO()
    Image.new(mode, size, 128).save(buffer, "JPEG", progressive=True, quality=75)
    data = buffer.getvalue()
    last_scan = data.rindex(b"\xff\xda")
    scan = data[last_scan:-2]  # header and entropy-coded data, up to EOI
    return data[:-2] + scan * repeats + b"\xff\xd9"


def jpeg_with_comments(count: int, size: tuple[int, int] = (16, 16)) -> bytes:
    """A real JPEG with `count` one-byte COM segments before its frame header."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 90, 60)).save(buffer, "JPEG", quality=50)
    data = buffer.getvalue()
    return data[:2] + b"\xff\xfe\x00\x03x" * count + data[2:]


def gif_with_comments(count: int, size: tuple[int, int] = (16, 16)) -> bytes:
    """A real GIF with `count` one-byte comment extension blocks before its image."""
    buffer = io.BytesIO()
    Image.new("P", size, 1).save(buffer, "GIF")
    data = buffer.getvalue()
    descriptor = data.index(b"\x2c", 13 + 3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 13)
    return data[:descriptor] + b"\x21\xfe\x01x\x00" * count + data[descriptor:]


def png_with_chunks(count: int, *, kind: bytes = b"tEXt", after_idat: bool = False,
                    size: tuple[int, int] = (16, 16)) -> bytes:
    """A real PNG with `count` small ancillary chunks before (or after) its image data."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 200, 10)).save(buffer, "PNG")
    data = buffer.getvalue()
    extra = _png_chunk(kind, b"k\x00v") * count
    at = data.index(b"IEND") - 4 if after_idat else data.index(b"IDAT") - 4
    return data[:at] + extra + data[at:]


def png_with_split_idat(count: int, size: tuple[int, int] = (16, 16)) -> bytes:
    """A real PNG whose image data is followed by `count` empty IDAT chunks."""
    return png_with_chunks(count, kind=b"IDAT", after_idat=True, size=size).replace(
        _png_chunk(b"IDAT", b"k\x00v"), _png_chunk(b"IDAT", b""))


def tiff_with_strips(strips: int, width: int = 8) -> bytes:
    """A valid uncompressed greyscale TIFF of `strips` one-row strips, all pointing at one row of
    bytes (2 bytes a strip in the file): Pillow plans one Python tile for each."""
    pixels = b"\x80" * width
    offsets_at = 8 + len(pixels)
    counts_at = offsets_at + 2 * strips
    ifd_at = counts_at + 2 * strips
    ifd_at += ifd_at % 2

    def entry(tag: int, kind: int, count: int, value: int) -> bytes:
        return struct.pack("<HHII", tag, kind, count, value)

    entries = [entry(256, 4, 1, width), entry(257, 4, 1, strips), entry(258, 3, 1, 8), entry(259, 3, 1, 1),
               entry(262, 3, 1, 1), entry(273, 3, strips, offsets_at), entry(277, 3, 1, 1), entry(278, 4, 1, 1),
               entry(279, 3, strips, counts_at)]
    ifd = struct.pack("<H", len(entries)) + b"".join(entries) + b"\x00\x00\x00\x00"
    body = pixels + struct.pack(f"<{strips}H", *([8] * strips)) + struct.pack(f"<{strips}H", *([width] * strips))
    return (b"II*\x00" + struct.pack("<I", ifd_at) + body).ljust(ifd_at, b"\x00") + ifd


def encoded_array(values, mode: str, fmt: str, **save) -> bytes:
    """`values` (a numpy array) as an image of `mode`, written in `fmt`."""
    buffer = io.BytesIO()
    Image.fromarray(values, mode).save(buffer, format=fmt, **save)
    return buffer.getvalue()
