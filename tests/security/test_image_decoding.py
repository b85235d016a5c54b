"""Decoding under a budget (faces/images/decoding.py): only the documented formats reach a decoder, tiny
bombs cost bounded memory, decodes in flight share one ceiling, and 16-bit images are scaled.

The memory test measures this process's RSS while a real register request (10 JPEG bombs) runs
through the real Django stack: the "server" is this process."""

from __future__ import annotations

import base64
import io
import struct
import threading
import time
import zlib

import numpy as np
import psutil
import pytest
from PIL import Image, ImageOps

from faceportal.errors import InvalidImage, PayloadTooLarge, ServiceUnavailable
from faces import images
from faces.engine import get_engine, run_in_engine_pool
from faces.images import decoding
from faces.models import Face, Person
from tests.conftest import key_client
from tests.image_samples import (
    encoded,
    encoded_array,
    gif_with_comments,
    jpeg_claiming,
    jpeg_with_comments,
    png_with_chunks,
    png_with_split_idat,
    progressive_jpeg_repeating_last_scan,
    tiff_with_strips,
)

ACCEPTED = {"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "MPO"}  # MPO is a JPEG with extra pictures
# The formats the attack found decoded; each must be among the generated samples below.
FOUND_BY_ATTACK = {"DDS", "QOI", "ICNS", "IM", "SGI", "SPIDER", "TGA", "PCX", "XBM", "MSP", "JPEG2000"}
BOMB_MEMORY_BOUND_MB = 300  # docs/SECURITY.md


def other_format_samples() -> dict[str, bytes]:
    """One sample of every format this Pillow can write, except the accepted ones."""
    Image.init()
    samples = {}
    base = Image.new("RGB", (64, 64), (200, 40, 40))
    for name in sorted(set(Image.SAVE) - ACCEPTED):
        for image in (base, base.convert("RGBA"), base.convert("L"), base.convert("1")):
            buffer = io.BytesIO()
            try:
                image.save(buffer, format=name)
            except Exception:  # noqa: BLE001 - this mode (or this format here) cannot be written
                continue
            samples[name] = buffer.getvalue()
            break
    return samples


def rle8_bmp(width: int = 8, height: int = 4) -> bytes:
    """A BMP with RLE8 compression (Pillow decodes it in pure Python; Pillow cannot write one)."""
    rows = b"".join(bytes([width, 1]) + b"\x00\x00" for _ in range(height)) + b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    header = b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset)
    return header + info + palette + rows


def test_every_other_writable_format_is_refused_from_its_magic_bytes(monkeypatch):
    samples = other_format_samples()
    assert FOUND_BY_ATTACK <= set(samples), FOUND_BY_ATTACK - set(samples)

    def no_decoder(*args, **kwargs):
        raise AssertionError("a decoder was reached")

    monkeypatch.setattr(decoding.Image, "open", no_decoder)
    for name, data in samples.items():
        with pytest.raises(InvalidImage) as refused:
            images.decode(data, index=2)
        assert refused.value.code == "unsupported_image_format", name
        assert refused.value.details["image_index"] == 2


@pytest.mark.parametrize("name", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_each_documented_format_decodes(name):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(buffer, format=name)
    loaded = images.decode(buffer.getvalue(), index=0)
    assert loaded.pixels.shape == (30, 40, 3) and loaded.size == (40, 30)
    blue, green, red = (int(v) for v in loaded.pixels[15, 20])
    assert green > 150 and red < 60 and blue < 60


def test_pure_python_decoders_are_refused():
    data = rle8_bmp()
    assert Image.open(io.BytesIO(data)).tile[0][0] == "bmp_rle"  # really the pure-Python decoder
    with pytest.raises(InvalidImage) as refused:
        images.decode(data, index=0)
    assert refused.value.code == "unsupported_image_format"


def test_a_jpeg_bomb_is_decoded_small_and_reports_its_real_size(settings):
    bomb = jpeg_claiming(6000, 6000)
    assert len(bomb) < 1000
    loaded = images.decode(bomb, index=0)
    assert max(loaded.pixels.shape[:2]) <= settings.FACEPORTAL_DECODE_MAX_SIDE
    assert loaded.size == (6000, 6000)
    assert loaded.box_to_original({"x": 10, "y": 20, "w": 100, "h": 50}) == {
        "x": round(10 * 6000 / loaded.pixels.shape[1]), "y": round(20 * 6000 / loaded.pixels.shape[0]),
        "w": round(100 * 6000 / loaded.pixels.shape[1]), "h": round(50 * 6000 / loaded.pixels.shape[0])}


def test_an_image_costing_more_than_the_whole_budget_is_refused(settings):
    settings.FACEPORTAL_DECODE_BUDGET_BYTES = 10 * 1024 * 1024
    with pytest.raises(InvalidImage) as refused:
        images.decode(jpeg_claiming(6000, 6000), index=0)
    assert refused.value.code == "image_too_large"
    assert images.decode_budget.held == 0


def test_decodes_in_flight_never_exceed_the_budget_and_waiters_time_out(settings):
    bomb = jpeg_claiming(4000, 4000)
    one = decoding._decode_cost(Image.open(io.BytesIO(bomb)), settings.FACEPORTAL_DECODE_MAX_SIDE)
    settings.FACEPORTAL_DECODE_BUDGET_BYTES = int(one * 2.5)  # room for two at a time, not three
    peak, errors, stop = [0], [], threading.Event()

    def watch():
        while not stop.is_set():
            peak[0] = max(peak[0], images.decode_budget.held)
            time.sleep(0.001)

    def work():
        try:
            for _ in range(3):
                images.decode(bomb, index=0)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    watcher = threading.Thread(target=watch)
    watcher.start()
    workers = [threading.Thread(target=work) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    stop.set()
    watcher.join()
    assert not errors, errors
    assert 0 < peak[0] <= settings.FACEPORTAL_DECODE_BUDGET_BYTES
    assert images.decode_budget.held == 0

    # With the whole budget held elsewhere, a decode waits its limit, then answers 503.
    settings.FACEPORTAL_DECODE_WAIT_SECONDS = 0.2
    with images.decode_budget.reserve(settings.FACEPORTAL_DECODE_BUDGET_BYTES,
                                      capacity=settings.FACEPORTAL_DECODE_BUDGET_BYTES, wait_seconds=0):
        with pytest.raises(ServiceUnavailable) as busy:
            images.decode(bomb, index=0)
    assert busy.value.code == "decoder_busy" and busy.value.status_code == 503


class RssPeak:
    """This process's resident memory, sampled every few milliseconds while a block runs."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def __enter__(self) -> RssPeak:
        self.before = self.process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def increase_mb(self) -> float:
        return (self.peak - self.before) / 2**20


@pytest.mark.django_db
def test_a_register_request_of_ten_bombs_stays_under_the_memory_bound(make_org, make_key, manifest, settings):
    org = make_org("acme")
    client = key_client(make_key(org))
    # Load the models on every engine thread (each holds its own) and warm the allocator with a
    # real registration first, as a running server has: only the bombs are measured.
    barrier = threading.Barrier(settings.FACEPORTAL_ENGINE_WORKERS)

    def warm_one() -> None:
        get_engine().warm()
        barrier.wait(timeout=300)  # hold this thread so the next warm-up lands on another

    for future in [run_in_engine_pool(warm_one) for _ in range(settings.FACEPORTAL_ENGINE_WORKERS)]:
        future.result()
    photos = [photo.b64() for photo in manifest["Tony_Blair"][:2]]
    warm = client.post("/register/acme", {"name": "Tony Blair", "images": photos}, format="json")
    assert warm.status_code == 201, warm.content
    bombs = [base64.b64encode(jpeg_claiming(6000, 6000)).decode() for _ in range(10)]
    with RssPeak() as memory:
        response = client.post("/register/acme", {"name": "Bombs", "images": bombs}, format="json")
    print(f"10 JPEG bombs (6000x6000 claimed, {len(jpeg_claiming(6000, 6000))} bytes each): "
          f"RSS +{memory.increase_mb:.0f} MB at peak")
    assert response.status_code == 422, response.content  # decoded (grey), no face: nothing stored
    assert response.json()["error"]["code"] == "no_face"
    assert memory.increase_mb <= BOMB_MEMORY_BOUND_MB
    assert not Person.objects.filter(name="Bombs").exists() and Face.objects.count() == 2


def sixteen_bit_grey_png(path) -> bytes:
    """A real photo converted to 16-bit greyscale, using the whole 16-bit range."""
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.uint16) * 257
    buffer = io.BytesIO()
    Image.fromarray(grey, "I;16").save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_sixteen_bit_greyscale_photo_is_scaled_not_saturated_and_its_face_found(manifest):
    photo = manifest["Tony_Blair"][0].path
    data = sixteen_bit_grey_png(photo)
    assert Image.open(io.BytesIO(data)).mode.startswith("I;16")
    loaded = images.decode(data, index=0)
    expected = np.asarray(Image.open(photo).convert("L"), dtype=np.int16)
    assert np.abs(loaded.pixels[:, :, 1].astype(np.int16) - expected).max() <= 1
    assert get_engine().faces_in(loaded.pixels).faces, "the face in the 16-bit photo was not found"


def test_the_images_of_one_request_share_a_pixel_budget(settings):
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(buffer, format="PNG")
    small = buffer.getvalue()
    settings.FACEPORTAL_DECODE_REQUEST_PIXELS = 3000  # two 1,200-pixel images, not three

    def decode_within_one_budget(count: int) -> int:
        with images.request_pixel_budget():
            return len([images.decode(small, index=index) for index in range(count)])

    assert decode_within_one_budget(2) == 2
    with pytest.raises(PayloadTooLarge) as refused:
        decode_within_one_budget(3)
    assert refused.value.code == "image_too_large" and refused.value.status_code == 413
    assert decode_within_one_budget(2) == 2  # per request: the next one starts afresh


@pytest.mark.django_db
def test_a_registration_shares_one_pixel_budget_and_stores_nothing_past_it(acme, manifest, settings):
    photo = manifest["Tony_Blair"][0]
    width, height = Image.open(photo.path).size
    settings.FACEPORTAL_DECODE_REQUEST_PIXELS = 2 * width * height  # two of these photos, not three
    refused = acme.client.post("/register/acme", {"name": "Blair", "images": [photo.b64()] * 3}, format="json")
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "image_too_large", refused.content
    assert not Person.objects.exists() and not Face.objects.exists()
    accepted = acme.client.post("/register/acme", {"name": "Blair", "images": [photo.b64()] * 2}, format="json")
    assert accepted.status_code == 201, accepted.content  # the next request starts afresh


@pytest.mark.django_db
def test_boxes_of_a_downscaled_photo_are_in_the_coordinates_sent(make_org, make_key, manifest, settings):
    org = make_org("acme")
    client = key_client(make_key(org))
    photo = Image.open(manifest["Tony_Blair"][0].path).convert("RGB")
    factor = 3 * settings.FACEPORTAL_DECODE_MAX_SIDE // max(photo.size) + 1
    big = photo.resize((photo.width * factor, photo.height * factor), Image.Resampling.BICUBIC)
    buffers = []
    for image in (photo, big):
        buffer = io.BytesIO()
        image.save(buffer, format="PNG" if image is photo else "JPEG", quality=95)
        buffers.append(base64.b64encode(buffer.getvalue()).decode())
    small_answer, big_answer = (client.post("/recognize/acme", {"image": data}, format="json").json()
                                for data in buffers)
    assert big_answer["image"] == {"width": big.width, "height": big.height}
    small_box, big_box = small_answer["faces"][0]["box"], big_answer["faces"][0]["box"]
    for side in ("x", "y", "w", "h"):
        assert abs(big_box[side] - small_box[side] * factor) <= 0.1 * small_box["w"] * factor, (small_box, big_box)


# --- work that grows with structure, not pixels -------------------------------------------------------

def never_opened(monkeypatch) -> None:
    def no_decoder(*args, **kwargs):
        raise AssertionError("Pillow opened an image that should have been refused from its structure")

    monkeypatch.setattr(decoding.Image, "open", no_decoder)


def assert_too_complex(data: bytes, *, index: int = 0) -> None:
    started = time.perf_counter()
    with pytest.raises(InvalidImage) as refused:
        images.decode(data, index=index)
    assert refused.value.code == "image_too_complex" and refused.value.status_code == 422, refused.value.message
    assert refused.value.details["image_index"] == index and refused.value.details["reason"]
    print(f"{len(data):,} bytes refused in {1000 * (time.perf_counter() - started):.1f} ms: {refused.value.message}")


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("size", [(64, 48), (333, 250), (1024, 768)])
def test_progressive_jpegs_repeating_a_scan_are_refused_before_any_decoder(monkeypatch, size, mode):
    honest = progressive_jpeg_repeating_last_scan(size, 0, mode=mode)
    assert images.decode(honest, index=0).size == size  # ordinary progressive JPEGs have about 10 scans
    for repeats in (60, 2000):
        bomb = progressive_jpeg_repeating_last_scan(size, repeats, mode=mode)
        with monkeypatch.context() as patch:
            never_opened(patch)
            assert_too_complex(bomb, index=1)


def test_jpeg_scan_work_is_bounded_by_scans_times_pixels(settings):
    settings.FACEPORTAL_DECODE_MAX_SCAN_PIXELS = 20 * 512 * 512
    assert images.decode(progressive_jpeg_repeating_last_scan((512, 512), 8), index=0).size == (512, 512)
    assert_too_complex(progressive_jpeg_repeating_last_scan((512, 512), 12))
    # The same scans over four times the pixels are four times the work.
    assert_too_complex(progressive_jpeg_repeating_last_scan((1024, 1024), 0))
    assert images.decode(progressive_jpeg_repeating_last_scan((256, 256), 40), index=0).size == (256, 256)


STRUCTURE_BOMBS = {
    "JPEG COM segments": lambda count, size: jpeg_with_comments(count, size),
    "GIF comment blocks": lambda count, size: gif_with_comments(count, size),
    "PNG tEXt chunks before the image": lambda count, size: png_with_chunks(count, size=size),
    "PNG tEXt chunks after the image": lambda count, size: png_with_chunks(count, after_idat=True, size=size),
    "PNG private chunks": lambda count, size: png_with_chunks(count, kind=b"prVt", size=size),
    "PNG empty IDAT chunks": lambda count, size: png_with_split_idat(count, size=size),
    "TIFF strips": lambda count, size: tiff_with_strips(count, width=size[0]),
}


@pytest.mark.parametrize("kind", sorted(STRUCTURE_BOMBS))
@pytest.mark.parametrize("size", [(16, 16), (97, 40)])
def test_structure_bombs_are_refused_before_pillow_opens_them(monkeypatch, kind, size):
    for count in (20_000, 200_000):
        bomb = STRUCTURE_BOMBS[kind](count, size)
        with monkeypatch.context() as patch:
            never_opened(patch)
            assert_too_complex(bomb)


@pytest.mark.parametrize("kind", sorted(STRUCTURE_BOMBS))
def test_structure_within_the_limits_still_decodes(settings, kind):
    settings.FACEPORTAL_DECODE_MAX_METADATA_BLOCKS = 12
    settings.FACEPORTAL_DECODE_MAX_BLOCKS = 40
    # A few blocks below each limit (the encoders' own segments count too) decode; past it, refused.
    assert images.decode(STRUCTURE_BOMBS[kind](8, (24, 20)), index=0).pixels.shape[2] == 3
    assert_too_complex(STRUCTURE_BOMBS[kind](60, (24, 20)))


def test_one_long_gif_comment_is_refused_before_pillow_joins_it(monkeypatch):
    # One comment extension of many sub-blocks: Pillow joins them with `bytes +=`.
    data = gif_with_comments(1)
    at = data.index(b"\x21\xfe")
    long_comment = b"\x21\xfe" + (b"\xff" + b"c" * 255) * 2000 + b"\x00"
    bomb = data[:at] + long_comment + data[at + 5:]
    never_opened(monkeypatch)
    assert_too_complex(bomb)


@pytest.mark.django_db
def test_a_scan_bomb_is_a_422_over_rest_and_nothing_is_stored(acme):
    bomb = base64.b64encode(progressive_jpeg_repeating_last_scan((800, 600), 3000)).decode()
    started = time.perf_counter()
    answer = acme.client.post("/recognize/acme", {"image": bomb}, format="json")
    assert answer.status_code == 422, answer.content
    assert answer.json()["error"]["code"] == "image_too_complex"
    assert answer.json()["error"]["details"]["image_index"] == 0
    registered = acme.client.post("/register/acme", {"name": "Bomb", "images": [bomb, bomb]}, format="json")
    assert registered.status_code == 422 and registered.json()["error"]["code"] == "image_too_complex"
    assert not Person.objects.exists()
    print(f"scan bomb answered over REST in {1000 * (time.perf_counter() - started):.0f} ms")


# --- the budget is what decoding costs ----------------------------------------------------------------

def _reserving(monkeypatch) -> list[int]:
    """Records each reservation decode makes from the budget."""
    reserved: list[int] = []
    original = images.decode_budget.reserve

    def spy(nbytes, **kwargs):
        reserved.append(nbytes)
        return original(nbytes, **kwargs)

    monkeypatch.setattr(images.decode_budget, "reserve", spy)
    return reserved


def flat(side: int, channels: int, value=128, dtype=np.uint8) -> np.ndarray:
    shape = (side, side) if channels == 1 else (side, side, channels)
    return np.full(shape, value, dtype)


COSTLY = {
    "lossless WebP RGB 2600": lambda: encoded_array(flat(2600, 3), "RGB", "WEBP", lossless=True, method=0),
    "lossless WebP RGBA 3000": lambda: encoded_array(flat(3000, 4), "RGBA", "WEBP", lossless=True, method=0),
    "lossy WebP RGB 2200": lambda: encoded_array(flat(2200, 3), "RGB", "WEBP", quality=40),
    "float TIFF 3000": lambda: encoded_array(flat(3000, 1, 0.5, np.float32), "F", "TIFF",
                                             compression="tiff_adobe_deflate"),
    "16-bit TIFF 2500": lambda: encoded_array(flat(2500, 1, 30000, np.uint16), "I;16", "TIFF",
                                              compression="tiff_adobe_deflate"),
    "16-bit PNG 3000": lambda: encoded_array(flat(3000, 1, 30000, np.uint16), "I;16", "PNG"),
    "RGBA PNG 2800": lambda: encoded_array(flat(2800, 4), "RGBA", "PNG"),
    "GIF 3000": lambda: encoded_array(flat(3000, 1), "L", "GIF"),
    "4:4:4 progressive JPEG 3000": lambda: encoded_array(flat(3000, 3), "RGB", "JPEG", progressive=True,
                                                         subsampling=0),
    "TIFF of 16,000 strips": lambda: tiff_with_strips(16_000, width=1500),
}


@pytest.mark.parametrize("kind", list(COSTLY))
def test_the_memory_a_decode_reserves_covers_what_it_really_uses(monkeypatch, kind):
    data = COSTLY[kind]()
    images.decode(encoded((1, 2, 3), "PNG"), index=0)  # decoder libraries loaded: not the image's cost
    reserved = _reserving(monkeypatch)
    with RssPeak() as memory:
        images.decode(data, index=0)
    used = memory.increase_mb * 2**20
    print(f"{kind}: {len(data):,} bytes, peak RSS +{used / 2**20:.0f} MB, reserved {reserved[0] / 2**20:.0f} MB")
    assert used <= reserved[0], f"{kind}: used {used / 2**20:.0f} MB, reserved {reserved[0] / 2**20:.0f} MB"


def test_concurrent_decodes_together_stay_within_the_budget(monkeypatch, settings):
    webp = COSTLY["lossless WebP RGB 2600"]()
    reserved = _reserving(monkeypatch)
    images.decode(webp, index=0)
    # Room for one such decode at a time, as the budget sees it.
    settings.FACEPORTAL_DECODE_BUDGET_BYTES = int(reserved[0] * 1.1)
    settings.FACEPORTAL_DECODE_WAIT_SECONDS = 60
    errors: list[Exception] = []

    def work() -> None:
        try:
            images.decode(webp, index=0)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(4)]  # more than the engine's threads
    with RssPeak() as memory:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    print(f"4 concurrent lossless WebPs ({len(webp)} bytes, 2600x2600): peak RSS +{memory.increase_mb:.0f} MB, "
          f"budget {settings.FACEPORTAL_DECODE_BUDGET_BYTES / 2**20:.0f} MB")
    assert not errors, errors
    assert memory.increase_mb * 2**20 <= settings.FACEPORTAL_DECODE_BUDGET_BYTES


@pytest.mark.django_db
def test_a_register_request_of_ten_webps_stays_under_the_memory_bound(acme, settings):
    sides = [4000, 4000, 3400] + [1200] * 7  # 54 M pixels together, within the request's budget
    webps = [base64.b64encode(encoded_array(flat(side, 4), "RGBA", "WEBP", lossless=True, method=0)).decode()
             for side in sides]
    images.decode(encoded((1, 2, 3), "WEBP"), index=0)
    with RssPeak() as memory:
        response = acme.client.post("/register/acme", {"name": "WebPs", "images": webps}, format="json")
    print(f"10 lossless WebPs ({sum(len(w) for w in webps) * 3 // 4:,} bytes together): "
          f"RSS +{memory.increase_mb:.0f} MB at peak")
    assert response.status_code == 422, response.content  # flat colour: no face, nothing stored
    assert memory.increase_mb <= BOMB_MEMORY_BOUND_MB
    assert not Person.objects.exists()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_exif_transpose_would(settings, fmt, orientation):
    # Oriented after downscaling (cheaper): the pixels and sizes are those of the image as shown.
    settings.FACEPORTAL_DECODE_MAX_SIDE = 60
    values = np.zeros((90, 150, 3), np.uint8)
    values[:30, :50] = (250, 20, 20)  # a red corner: where it lands shows the orientation
    values[60:, 100:] = (20, 20, 250)
    image = Image.fromarray(values, "RGB")
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, exif=exif, **({"quality": 95} if fmt in ("JPEG", "WEBP") else {}))
    shown = ImageOps.exif_transpose(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    loaded = images.decode(buffer.getvalue(), index=0)
    assert loaded.size == shown.size
    expected = np.asarray(shown.resize((loaded.pixels.shape[1], loaded.pixels.shape[0]), Image.Resampling.BILINEAR))
    difference = np.abs(loaded.pixels[:, :, ::-1].astype(int) - expected.astype(int))
    assert np.median(difference) <= 4 and np.percentile(difference, 90) <= 40, (fmt, orientation)


def test_one_tenants_decodes_never_queue_ahead_of_another_tenants(settings):
    settings.FACEPORTAL_DECODE_WAIT_SECONDS = 60
    slow = progressive_jpeg_repeating_last_scan((4096, 4096), 20)  # 30 scans: within every limit
    started = time.perf_counter()
    images.decode(slow, index=0)
    one = time.perf_counter() - started
    small = encoded((10, 200, 10), "PNG", (40, 30))
    errors: list[Exception] = []

    def tenant_a() -> None:
        try:
            with images.decoding_for("tenant-a"):
                images.decode(slow, index=0)
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    flood = [threading.Thread(target=tenant_a) for _ in range(2 * settings.FACEPORTAL_ENGINE_WORKERS)]
    for thread in flood:
        thread.start()
    time.sleep(min(0.2, one / 4))  # tenant A's decodes are running and waiting
    with images.decoding_for("tenant-b"):
        started = time.perf_counter()
        assert images.decode(small, index=0).size == (40, 30)
        waited = time.perf_counter() - started
    for thread in flood:
        thread.join()
    print(f"tenant B's small image took {1000 * waited:.0f} ms while tenant A had {len(flood)} decodes of "
          f"{1000 * one:.0f} ms each in flight")
    assert not errors, errors
    assert waited < one / 2


@pytest.mark.parametrize("kind", [b"zTXt", b"iTXt"])
@pytest.mark.parametrize("count", [9, 64])
def test_compressed_png_text_is_refused_before_pillow_inflates_it(monkeypatch, kind, count):
    inflated = zlib.compress(b"x" * 1_000_000, 9)  # Pillow inflates each, 1 MB, inside Image.open
    body = b"k\x00\x00" + inflated if kind == b"zTXt" else b"k\x00\x01\x00\x00\x00" + inflated
    data = png_with_chunks(0)
    at = data.index(b"IDAT") - 4
    chunk = struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    bomb = data[:at] + chunk * count + data[at:]
    assert len(bomb) < 64 * 1024
    never_opened(monkeypatch)
    assert_too_complex(bomb)


@pytest.mark.parametrize(("mode", "fmt", "value", "expected"), [
    ("I;16", "PNG", 65535, 255), ("I;16", "PNG", 32896, 128), ("I;16", "TIFF", 200, 1),
    ("I;16B", "TIFF", 32896, 128), ("I", "TIFF", 40000, 156), ("I", "TIFF", 100, 100),
    ("F", "TIFF", 0.5, 128), ("F", "TIFF", 100.0, 100),
])
@pytest.mark.parametrize("side", [30, 300])
def test_wide_greyscale_is_scaled_the_same_whether_or_not_it_is_downscaled(settings, mode, fmt, value, expected,
                                                                           side):
    settings.FACEPORTAL_DECODE_MAX_SIDE = 100  # the 300-pixel images are resampled before scaling
    image = Image.new(mode, (side, side // 2 + 1), value)
    image.paste(0 if mode != "F" else 0.0, (0, 0, side // 3, side // 6 + 1))  # a dark block: not one grey
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    assert Image.open(io.BytesIO(buffer.getvalue())).mode == mode
    pixels = images.decode(buffer.getvalue(), index=0).pixels
    assert abs(int(pixels[-1, -1, 1]) - expected) <= 1, (mode, value, pixels[-1, -1])
    assert int(pixels[0, 0, 1]) == 0
