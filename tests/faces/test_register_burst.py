"""A burst of frames registers the best few: POST /register with keep_best, real model, real photos."""

import base64

import cv2
import pytest

from faces.models import Face, Person

pytestmark = pytest.mark.django_db


def register(client, name, images, **extra):
    return client.post("/register/acme", {"name": name, "images": images, **extra}, format="json")


def blurred_b64(photo) -> str:
    image = cv2.imread(str(photo.path))
    blurred = cv2.GaussianBlur(image, (0, 0), 2.5 * max(image.shape[:2]) / 250)
    return base64.b64encode(cv2.imencode(".jpg", blurred)[1].tobytes()).decode()


def test_a_burst_keeps_the_three_sharpest_usable_faces_and_says_why_the_others_were_not(acme, manifest):
    org, client = acme.org, acme.client
    photos = manifest["George_W_Bush"][:6]
    images = [photo.b64() for photo in photos] + [blurred_b64(photos[0])]
    response = register(client, "George W Bush", images, keep_best=3)
    assert response.status_code == 201, response.content
    body = response.json()
    outcomes = body["images"]
    assert [o["index"] for o in outcomes] == list(range(len(images)))
    kept = [o for o in outcomes if o["accepted"]]
    passed_over = [o for o in outcomes if o["code"] == "not_among_best"]
    assert body["faces_added"] == 3 and len(kept) == 3
    assert Face.objects.filter(organization=org, person__name="George W Bush").count() == 3
    stored = Face.objects.filter(organization=org).values_list("id", flat=True)
    assert sorted(o["face_id"] for o in kept) == sorted(stored)
    # The blurred frame fails its gate, as without keep_best; the usable rest were outranked.
    assert outcomes[-1]["code"] == "face_too_blurred"
    assert len(passed_over) == len(images) - 1 - 3
    least_kept = min(o["quality"]["sharpness"] for o in kept)
    for outcome in passed_over:
        assert outcome["face_id"] is None
        assert outcome["quality"]["sharpness"] <= least_kept
        assert "3 sharper frames were kept" in outcome["reason"]


def test_without_keep_best_every_usable_image_is_stored_as_documented(acme, manifest):
    response = register(acme.client, "George W Bush", [p.b64() for p in manifest["George_W_Bush"][:5]])
    assert response.status_code == 201, response.content
    assert response.json()["faces_added"] == 5
    assert all(o["code"] != "not_among_best" for o in response.json()["images"])


def test_repeated_frames_take_no_place_among_the_best(acme, manifest):
    """A still camera sends the same frame several times: one copy counts, the next frames fill up."""
    photos = manifest["Tony_Blair"]
    images = [photos[0].b64()] * 3 + [photos[1].b64(), photos[2].b64()]
    response = register(acme.client, "Tony Blair", images, keep_best=3)
    assert response.status_code == 201, response.content
    codes = [o["code"] for o in response.json()["images"]]
    assert codes.count("duplicate_image") == 2 and codes.count(None) == 3
    assert response.json()["faces_added"] == 3


def test_a_multipart_burst_takes_keep_best_as_form_text(acme, manifest):
    data = {"name": "George W Bush", "keep_best": "2",
            "images": [open(photo.path, "rb") for photo in manifest["George_W_Bush"][:4]]}
    try:
        response = acme.client.post("/register/acme", data, format="multipart")
    finally:
        for handle in data["images"]:
            handle.close()
    assert response.status_code == 201, response.content
    assert response.json()["faces_added"] == 2


@pytest.mark.parametrize("keep_best", [0, -1, "three", "3", True, 2.5, 11, [3], {"n": 3}])
def test_a_bad_keep_best_is_a_400_naming_the_field_and_stores_no_one(acme, manifest, keep_best):
    response = register(acme.client, "X", [manifest["Barack_Obama"][0].b64()], keep_best=keep_best)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_input" and error["details"]["field"] == "keep_best"
    assert not Person.objects.filter(organization=acme.org).exists()


def test_keep_best_null_means_every_usable_image(acme, manifest):
    images = [p.b64() for p in manifest["Tony_Blair"][:2]]
    response = register(acme.client, "Tony Blair", images, keep_best=None)
    assert response.status_code == 201, response.content
    assert response.json()["faces_added"] == 2


@pytest.mark.parametrize("keep_best", ["three", "0", "2.5", "99"])
def test_a_bad_keep_best_in_a_form_is_a_400_too(acme, manifest, keep_best):
    with open(manifest["Barack_Obama"][0].path, "rb") as handle:
        response = acme.client.post("/register/acme", {"name": "X", "keep_best": keep_best, "images": [handle]},
                                    format="multipart")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == "keep_best"
    assert not Person.objects.filter(organization=acme.org).exists()
