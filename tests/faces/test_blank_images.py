"""Images without contrast skip the detector (bomb filler, a covered camera); a real photo never does."""

import io

import numpy as np
from PIL import Image

from faces import images
from faces.engine.pipeline import is_blank
from tests.image_samples import jpeg_claiming


def png(mode: str, size: tuple[int, int], color) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color).save(buffer, "PNG")
    return buffer.getvalue()


def test_bomb_filler_and_one_colour_images_are_blank():
    for data in (jpeg_claiming(6000, 6000), jpeg_claiming(3000, 2000), png("L", (4000, 4000), 90),
                 png("RGB", (640, 480), (0, 0, 0)), png("RGB", (640, 480), (250, 250, 250))):
        assert is_blank(images.decode(data, index=0).pixels)


def test_no_photo_of_the_set_is_blank(manifest):
    photos = [photo for group in manifest.values() for photo in group]
    assert len(photos) > 200
    for photo in photos:
        assert not is_blank(images.decode(photo.path.read_bytes(), index=0).pixels), photo.path


def test_a_blank_frame_has_no_face_and_a_photo_still_has_one(manifest):
    from faces.engine import get_engine

    engine = get_engine()
    assert engine.faces_in(np.full((480, 640, 3), 128, np.uint8)).faces == []
    photo = manifest["Barack_Obama"][0]
    assert len(engine.faces_in(images.decode(photo.path.read_bytes(), index=0).pixels).faces) >= 1
