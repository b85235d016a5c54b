"""An image crowded with faces costs at most FACEPORTAL_MAX_FACES_PER_IMAGE embeddings: past the
cap only the most prominent faces are recognised, and the answer says how many were left out."""

from __future__ import annotations

import base64
import io
import random

import pytest
from django.test import override_settings
from PIL import Image

from tests.photos import load_manifest

pytestmark = pytest.mark.django_db


def crowd(*, faces: int, seed: int) -> bytes:
    """A JPEG grid of `faces` real single-face photos, each at its own random scale."""
    rng = random.Random(seed)
    photos = [photos[0] for identity, photos in sorted(load_manifest().items())
              if not identity.startswith("_") and photos]
    rng.shuffle(photos)
    columns = 4
    cell = 300
    canvas = Image.new("RGB", (columns * cell, ((faces + columns - 1) // columns) * cell), (128, 128, 128))
    for index in range(faces):
        side = rng.randint(150, cell)
        tile = Image.open(photos[index % len(photos)].path).convert("RGB").resize((side, side))
        offset = (cell - side) // 2
        canvas.paste(tile, ((index % columns) * cell + offset, (index // columns) * cell + offset))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=90)
    return out.getvalue()


def recognise(client, jpeg: bytes) -> dict:
    response = client.post("/recognize/acme", {"image": base64.b64encode(jpeg).decode()}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.mark.parametrize("faces,cap,seed", [(6, 2, 1), (9, 5, 2), (12, 3, 3)])
def test_faces_past_the_cap_are_left_out_and_counted(make_tenant, faces, cap, seed):
    tenant = make_tenant("acme")
    jpeg = crowd(faces=faces, seed=seed)
    with override_settings(FACEPORTAL_MAX_FACES_PER_IMAGE=0):  # 0: no cap
        everyone = recognise(tenant.client, jpeg)
    found = len(everyone["faces"])
    assert everyone["faces_dropped"] == 0
    assert found > cap, f"the crowd should hold more than {cap} detectable faces, found {found}"
    with override_settings(FACEPORTAL_MAX_FACES_PER_IMAGE=cap):
        capped = recognise(tenant.client, jpeg)
    assert len(capped["faces"]) == cap
    assert capped["faces_dropped"] == found - cap
    # The most prominent are the ones kept: the uncapped answer lists faces most prominent first.
    assert [face["box"] for face in capped["faces"]] == [face["box"] for face in everyone["faces"][:cap]]


def test_an_image_within_the_cap_loses_nothing(make_tenant):
    tenant = make_tenant("acme")
    with override_settings(FACEPORTAL_MAX_FACES_PER_IMAGE=20):
        answer = recognise(tenant.client, crowd(faces=3, seed=4))
    assert answer["faces_dropped"] == 0 and len(answer["faces"]) == 3
