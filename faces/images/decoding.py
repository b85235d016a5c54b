"""Decoding under bounds: the format from the magic bytes, the structure walked before Pillow
opens anything (faces/image_structure.py), pixels checked from the header, and decode memory
reserved from one process-wide budget, with per-tenant slots so no tenant waits behind another's
images. Every refusal is an `InvalidImage` naming the image's index.
"""

from __future__ import annotations

import contextvars
import ctypes
import io
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from django.conf import settings
from PIL import Image, UnidentifiedImageError

from faceportal.errors import InvalidImage, PayloadTooLarge, ServiceUnavailable
from faces import image_structure
from faces.image_structure import Structure


def _return_big_buffers_to_the_os() -> None:
    """glibc raises its mmap threshold after each big free, after which decode buffers come from
    the heap and stay resident once freed (measured: ~30 MB kept per 2048-px decode). A fixed
    threshold keeps every buffer of 4 MiB or more in its own mapping, unmapped on free."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 4 * 1024 * 1024)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def configure_process() -> None:
    """The process-wide settings decoding relies on, applied once at start-up (faces.apps).

    Pillow's own bomb guard is off, not aligned: ours (FACEPORTAL_MAX_IMAGE_PIXELS, read from the
    header before any decode, with the per-request pixel budget) replaces it and answers
    image_too_large; Pillow's would warn, or raise at twice its fixed limit, whatever our setting says.
    """
    Image.MAX_IMAGE_PIXELS = None
    _return_big_buffers_to_the_os()


@dataclass(frozen=True)
class LoadedImage:
    index: int
    pixels: np.ndarray  # BGR uint8, EXIF orientation applied, longest side <= FACEPORTAL_DECODE_MAX_SIDE
    source_kind: str
    byte_size: int
    # The image as sent (after EXIF orientation); `pixels` may be a downscaled copy of it.
    original_size: tuple[int, int] | None = None

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as the client sent it: what boxes and sizes in replies refer to."""
        if self.original_size is not None:
            return self.original_size
        height, width = self.pixels.shape[:2]
        return width, height

    def box_to_original(self, box: dict[str, int]) -> dict[str, int]:
        """A box found on `pixels`, in the coordinates of the image as sent."""
        height, width = self.pixels.shape[:2]
        sx, sy = self.size[0] / width, self.size[1] / height
        if sx == 1 and sy == 1:
            return box
        return {"x": round(box["x"] * sx), "y": round(box["y"] * sy), "w": round(box["w"] * sx),
                "h": round(box["h"] * sy)}


class ImageTooLarge(InvalidImage):
    """Over the size or pixel limit: 413, like a body over its limit, with the same error shape."""

    status_code = 413


def human_size(size: int) -> str:
    """10485760 -> "10 MB" (binary units, written as people read them)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


def image_too_big(index: int) -> InvalidImage:
    limit = settings.FACEPORTAL_MAX_IMAGE_BYTES
    return image_refused(index, f"larger than the {human_size(limit)} limit", code="image_too_large")


class ImageTooComplex(InvalidImage):
    """Well-formed, but with more structure (scans, segments, chunks, strips) than decoding may
    cost: 422, the image is understood and refused."""

    status_code = 422


def image_refused(index: int, reason: str, *, code: str = "invalid_image") -> InvalidImage:
    error_class = {"image_too_large": ImageTooLarge, "image_too_complex": ImageTooComplex}.get(code, InvalidImage)
    return error_class(f"Image {index}: {reason}", details={"image_index": index, "reason": reason}, code=code)


# --- formats ---------------------------------------------------------------------------------------

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
_SIGNATURES = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
)


def sniff_format(data: bytes) -> str | None:
    """The documented format these bytes start like, from magic bytes alone; None for anything else."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    return None


# --- decoding under a memory budget ------------------------------------------------------------------

def _wait_for_room(condition: threading.Condition, has_room: Callable[[], bool], *, wait_seconds: float,
                   busy: str) -> None:
    """With `condition` held, wait until `has_room()`; 503 `decoder_busy` once `wait_seconds` pass."""
    deadline = time.monotonic() + wait_seconds
    while not has_room():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ServiceUnavailable(busy, code="decoder_busy")
        condition.wait(remaining)


class DecodeBudget:
    """Bytes that decodes in flight in this process may hold together (FACEPORTAL_DECODE_BUDGET_BYTES).

    A decode reserves its estimated peak before it starts and gives it back when it ends, so any
    number of concurrent requests hold at most the budget in decoder buffers; the rest wait.
    """

    def __init__(self) -> None:
        self._held = 0
        self._condition = threading.Condition()

    @property
    def held(self) -> int:
        with self._condition:
            return self._held

    @contextmanager
    def reserve(self, nbytes: int, *, capacity: int, wait_seconds: float) -> Iterator[None]:
        with self._condition:
            _wait_for_room(self._condition, lambda: self._held + nbytes <= capacity, wait_seconds=wait_seconds,
                           busy="The server is decoding too many images at once; try again shortly.")
            self._held += nbytes
        try:
            yield
        finally:
            with self._condition:
                self._held -= nbytes
                self._condition.notify_all()


decode_budget = DecodeBudget()


class TenantDecodeSlots:
    """Decodes one tenant may have on the engine pool at once, queued or running: one engine thread
    fewer than the pool has (at least one), so one tenant's images never fill the pool's queue
    ahead of everyone else's; its further decodes wait in their own request threads."""

    def __init__(self) -> None:
        self._in_flight: dict[Any, int] = {}
        self._condition = threading.Condition()

    @contextmanager
    def hold(self, tenant: Any, *, slots: int, wait_seconds: float) -> Iterator[None]:
        if tenant is None:  # not on behalf of a tenant (maintenance, benchmarks)
            yield
            return
        with self._condition:
            _wait_for_room(self._condition, lambda: self._in_flight.get(tenant, 0) < slots, wait_seconds=wait_seconds,
                           busy="This organisation is decoding too many images at once; try again shortly.")
            self._in_flight[tenant] = self._in_flight.get(tenant, 0) + 1
        try:
            yield
        finally:
            with self._condition:
                self._in_flight[tenant] -= 1
                if not self._in_flight[tenant]:
                    del self._in_flight[tenant]
                self._condition.notify_all()


tenant_decode_slots = TenantDecodeSlots()
_decode_tenant: contextvars.ContextVar[Any] = contextvars.ContextVar("decode_tenant", default=None)


@contextmanager
def decoding_for(tenant: Any) -> Iterator[None]:
    """Images decoded inside are `tenant`'s (an organisation's id) for `TenantDecodeSlots`."""
    token = _decode_tenant.set(tenant)
    try:
        yield
    finally:
        _decode_tenant.reset(token)


def _tenant_slots() -> int:
    return max(1, settings.FACEPORTAL_ENGINE_WORKERS - 1)
# Pixels the images of one request may still decode (`request_pixel_budget`): decoding time grows
# with pixels, so a request of ten small PNG bombs cannot hold a core for half a minute.
_request_pixels: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("request_pixels", default=None)


@contextmanager
def request_pixel_budget() -> Iterator[None]:
    """The images decoded inside share `FACEPORTAL_DECODE_REQUEST_PIXELS` (one request's images)."""
    token = _request_pixels.set([settings.FACEPORTAL_DECODE_REQUEST_PIXELS])
    try:
        yield
    finally:
        _request_pixels.reset(token)

_WIDE_MODES = {"I;16": 2, "I;16L": 2, "I;16B": 2, "I;16N": 2, "I": 4, "F": 4}
_RESIZABLE_WIDE = {"I;16", "I;16L", "I", "F"}  # Pillow resamples these as they are
_ONE_BYTE_MODES = {"1", "L", "P"}  # Pillow stores every other 8-bit mode in 4 bytes a pixel
# What a decoder holds beyond Pillow's image while it runs, in bytes per pixel, measured with
# bench/decode_cost.py: libwebp's animation decoder keeps two canvases (and lossless a further ARGB
# buffer), which Pillow copies into a bytes object before unpacking it into the image.
_DECODER_BYTES_PER_PIXEL = {"WEBP": 16}
# Pillow's plan for one strip of a raw TIFF (a tuple of tuples), in bytes, measured likewise.
_TILE_BYTES = 600
# Allocator slack and the smaller buffers nobody models (rows, tables): measured peaks over the
# model stayed under this share.
_MARGIN = 1.25


def _fitted(width: int, height: int, max_side: int) -> tuple[int, int]:
    if max(width, height) <= max_side:
        return width, height
    ratio = max_side / max(width, height)
    return max(1, round(width * ratio)), max(1, round(height * ratio))


def _bytes_per_pixel(mode: str) -> int:
    if mode in _WIDE_MODES:
        return _WIDE_MODES[mode]
    return 1 if mode in _ONE_BYTE_MODES else 4


def _decode_cost(image: Image.Image, max_side: int, structure: Structure | None = None) -> int:
    """Peak bytes to decode `image` as opened (after any draft) and bring it to BGR at `max_side`.

    The decoded image lives until the end; on top of it the peak is the largest of three phases:
    loading (the decoder's own buffers: libwebp's canvases, libjpeg's coefficients, Pillow's plan
    of a TIFF's strips), resizing (a full-size conversion where `_pixels` makes one, the first
    pass's out_width x height intermediate and the result) and the end (the small image, its
    conversions and the arrays)."""
    structure = structure or Structure()
    width, height = image.size
    pixels = width * height
    held = pixels * _bytes_per_pixel(image.mode)
    loading = (pixels * _DECODER_BYTES_PER_PIXEL.get(image.format or "", 0) + structure.coefficient_bytes
               + structure.tiles * _TILE_BYTES)
    if image.mode in _WIDE_MODES:  # resampled as they are, or as 32-bit "I" after a conversion
        resizable = image.mode in _RESIZABLE_WIDE
        working, converted = (_bytes_per_pixel(image.mode), 0) if resizable else (4, pixels * 4)
    elif image.mode == "RGBA":  # Pillow resizes RGBA through a premultiplied full-size copy
        working, converted = 4, pixels * 4 if (width, height) != _fitted(width, height, max_side) else 0
    elif image.mode in ("RGB", "L"):
        working, converted = _bytes_per_pixel(image.mode), 0
    else:  # palette, CMYK, LA...: converted to RGB at full size before resizing
        working, converted = 4, pixels * 4
    out_width, out_height = _fitted(width, height, max_side)
    out_pixels = out_width * out_height
    resizing = converted + (out_width * height + out_pixels) * working if out_pixels != pixels else converted
    # Scaling wide greyscale takes a float copy of the small image; then RGB, bytes, BGR.
    end = out_pixels * (working + (6 if image.mode in _WIDE_MODES else 0) + (4 if image.mode == "RGBA" else 0)
                        + 4 + 3 + 3)
    return int((held + max(loading, resizing, end)) * _MARGIN)


def _exif_orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(0x0112, 1))
    except (TypeError, ValueError):
        return 1


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
              5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def _to_8bit(image: Image.Image, *, top: float, sixteen_bit: bool) -> Image.Image:
    """16-bit and 32-bit greyscale to 8 bits by scaling the range (Pillow's convert saturates).
    `top` and `sixteen_bit` describe the image as decoded (this may be a downscaled copy)."""
    # One float copy, scaled, rounded and clipped in place.
    scaled = np.asarray(image).astype(np.float32)
    if sixteen_bit or 255 < top <= 65535:
        scaled *= 255.0 / 65535.0
    elif image.mode == "F" and 0 < top <= 1.0:
        scaled *= 255.0
    elif top > 255:
        scaled *= 255.0 / top
    np.rint(scaled, out=scaled)
    np.clip(scaled, 0, 255, out=scaled)
    return Image.fromarray(scaled.astype(np.uint8), "L")


def _pixels(image: Image.Image, *, max_side: int) -> tuple[np.ndarray, bool]:
    """Load, downscale, convert to BGR uint8 and orient; returns the pixels and whether EXIF
    orientation swapped width and height. Only the decoded image and, for palette or CMYK, one
    conversion exist at full size: wide greyscale is resampled before it is scaled to 8 bits,
    and orientation is applied to the small image."""
    image.load()
    orientation = _exif_orientation(image)
    top, sixteen_bit = 0.0, image.mode.startswith("I;16")
    if image.mode in _WIDE_MODES:
        if image.mode not in _RESIZABLE_WIDE:  # big-endian 16-bit: neither resampled nor measured
            image = image.convert("I")
        top = float(image.getextrema()[1] or 0)
    elif image.mode not in ("RGB", "RGBA", "L"):
        image = image.convert("RGB")  # palette, CMYK, LA...: resizing them directly is lossy or slow
    target = _fitted(*image.size, max_side)
    if target != image.size:
        image = image.resize(target, Image.Resampling.BILINEAR, reducing_gap=2.0)
    if image.mode in _WIDE_MODES:
        image = _to_8bit(image, top=top, sixteen_bit=sixteen_bit)
    method = _TRANSPOSE.get(orientation)
    if method is not None:
        image = image.transpose(method)
    if image.mode != "RGB":
        image = image.convert("RGB")
    # OpenCV's channel swap: NumPy's reversed view copied out costs a video frame four times as much.
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR), method in (
        Image.Transpose.TRANSPOSE, Image.Transpose.ROTATE_270, Image.Transpose.TRANSVERSE, Image.Transpose.ROTATE_90)


def _take_request_pixels(pixels: int) -> None:
    remaining = _request_pixels.get()
    if remaining is None:
        return
    if pixels > remaining[0]:
        limit = settings.FACEPORTAL_DECODE_REQUEST_PIXELS
        raise PayloadTooLarge(f"The images of this request together exceed {limit} decoded pixels.",
                              details={"limit": limit}, code="image_too_large")
    remaining[0] -= pixels


def _on_engine_thread() -> bool:
    from faces.engine import on_engine_thread

    return on_engine_thread()


def _run_bounded(fn, /, *args, **kwargs):
    """On the engine's bounded thread pool (inline when already on it): decodes cannot multiply
    beyond the pool, whatever the number of request threads."""
    from faces.engine import call_in_engine_pool

    return call_in_engine_pool(fn, *args, **kwargs)


def _structure_limits() -> image_structure.Limits:
    return image_structure.Limits(
        max_scans=settings.FACEPORTAL_DECODE_MAX_SCANS, max_scan_pixels=settings.FACEPORTAL_DECODE_MAX_SCAN_PIXELS,
        max_blocks=settings.FACEPORTAL_DECODE_MAX_BLOCKS,
        max_metadata_blocks=settings.FACEPORTAL_DECODE_MAX_METADATA_BLOCKS,
    )


def decode(data: bytes, *, index: int, source_kind: str = "bytes") -> LoadedImage:
    if len(data) > settings.FACEPORTAL_MAX_IMAGE_BYTES:
        raise image_too_big(index)
    if not data:
        raise image_refused(index, "empty image")
    # Checked from magic bytes before any decoder sees the data: no other Pillow plugin runs.
    image_format = sniff_format(data)
    if image_format is None:
        raise image_refused(index, "not a supported image format (JPEG, PNG, WebP, BMP, GIF, TIFF)",
                    code="unsupported_image_format")
    try:
        # Before Pillow's open loop, which walks segments and chunks in Python.
        structure = image_structure.inspect(data, image_format, limits=_structure_limits())
    except image_structure.TooComplex as refused:
        raise image_refused(index, refused.reason, code="image_too_complex") from None
    try:
        image = Image.open(io.BytesIO(data), formats=[image_format])
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, struct.error, EOFError):
        raise image_refused(index, f"not a valid {image_format} image") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise image_refused(index, "image has no pixels")
    if width * height > settings.FACEPORTAL_MAX_IMAGE_PIXELS:
        raise image_refused(
            index,
            f"{width}x{height} exceeds the limit of {settings.FACEPORTAL_MAX_IMAGE_PIXELS} pixels",
            code="image_too_large",
        )
    if any(tile[0] in Image.DECODERS for tile in image.tile):
        # Pillow's pure-Python decoders (e.g. RLE BMP) hold the interpreter lock per pixel.
        raise image_refused(index, f"this {image_format} encoding is not supported", code="unsupported_image_format")
    max_side = settings.FACEPORTAL_DECODE_MAX_SIDE
    try:
        if image_format == "JPEG":
            # libjpeg decodes at 1/2, 1/4 or 1/8 scale: the smallest whose longest side still
            # reaches half the target, so a 6000x6000 claim never exists at full size in memory.
            image.draft("RGB", _fitted(width, height, max(1, max_side // 2)))
        _take_request_pixels(image.size[0] * image.size[1])
        cost = _decode_cost(image, max_side, structure)
        capacity = settings.FACEPORTAL_DECODE_BUDGET_BYTES
        if cost > capacity:
            raise image_refused(index, f"{width}x{height} needs more memory to decode than this server allows",
                        code="image_too_large")
        wait = settings.FACEPORTAL_DECODE_WAIT_SECONDS
        # The tenant's slot first: a decode waiting behind its own tenant's holds no budget. A decode
        # that is already part of an engine task (a socket frame's) adds nothing to the pool's queue,
        # so it takes no slot: a pool thread never idles waiting for another thread's decode.
        tenant = None if _on_engine_thread() else _decode_tenant.get()
        with tenant_decode_slots.hold(tenant, slots=_tenant_slots(), wait_seconds=wait), \
                decode_budget.reserve(cost, capacity=capacity, wait_seconds=wait):
            pixels, swapped = _run_bounded(_pixels, image, max_side=max_side)
    except (OSError, ValueError, SyntaxError, struct.error, EOFError, Image.DecompressionBombError):
        raise image_refused(index, "image data is corrupt or truncated") from None
    # Draft decoding may round; the size as sent is the header's, oriented like the pixels.
    return LoadedImage(index=index, pixels=pixels, source_kind=source_kind, byte_size=len(data),
                       original_size=(height, width) if swapped else (width, height))


