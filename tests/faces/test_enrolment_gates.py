"""Enrolment gates with the real model on real photos: which face, good enough, nobody else's, once."""

import base64

import cv2
import numpy as np
import pytest

from faces.models import Face, Person

pytestmark = pytest.mark.django_db


def group_photo(manifest, name: str):
    return next(photo for photo in manifest["_group"] if photo.path.name == name)


def register(client, name, images, **extra):
    return client.post("/register/acme", {"name": name, "images": images, **extra}, format="json")


def test_two_equally_prominent_faces_are_refused_unless_the_client_picks_one(acme, manifest):
    org, client = acme.org, acme.client
    photo = group_photo(manifest, "two_people.jpg")  # Obama and Biden, side by side
    refused = register(client, "Someone", [photo.b64()])
    assert refused.status_code == 422, refused.content
    error = refused.json()["error"]
    assert error["code"] == "ambiguous_faces"
    assert error["details"]["images"][0]["code"] == "ambiguous_faces"
    assert not Person.objects.filter(organization=org).exists()

    # The client picks a face: that one is registered, and the answer says which box it used.
    image = cv2.imread(str(photo.path))
    from faces.engine import get_engine

    boxes = [face.detection.box.as_dict() for face in get_engine().faces_in(image).faces]
    assert len(boxes) >= 2
    picked = boxes[1]
    chosen = register(client, "Someone", [photo.b64()], boxes=[picked])
    assert chosen.status_code == 201, chosen.content
    outcome = chosen.json()["images"][0]
    assert outcome["accepted"] is True and outcome["box"] == picked and outcome["faces_detected"] >= 2


def test_a_photo_with_one_clearly_prominent_face_registers_it_and_reports_the_box(acme, manifest):
    client = acme.client
    photo = group_photo(manifest, "kit_with_rose.jpg")  # two faces, one much more prominent
    response = register(client, "Kit", [photo.b64()])
    assert response.status_code == 201, response.content
    outcome = response.json()["images"][0]
    assert outcome["faces_detected"] >= 2 and outcome["box"]["w"] > 0


def test_a_blurred_face_is_refused_with_its_reason(acme, manifest):
    org, client = acme.org, acme.client
    image = cv2.imread(str(manifest["Barack_Obama"][0].path))
    blurred = cv2.GaussianBlur(image, (0, 0), 2.5 * max(image.shape[:2]) / 250)
    encoded = base64.b64encode(cv2.imencode(".jpg", blurred)[1].tobytes()).decode()
    response = register(client, "Blurry", [encoded, manifest["Barack_Obama"][1].b64()])
    assert response.status_code == 201, response.content
    first, second = response.json()["images"]
    assert first["accepted"] is False and first["code"] == "face_too_blurred"
    assert "blurred" in first["reason"] and first["quality"]["sharpness"] < 10
    assert second["accepted"] is True and second["quality"]["sharpness"] >= 10
    assert Face.objects.filter(organization=org).count() == 1


def test_the_size_gate_is_a_setting_and_names_its_reason(acme, manifest, settings):
    client = acme.client
    settings.FACEPORTAL_ENROL_MIN_FACE_PIXELS = 2000  # no face is that large
    response = register(client, "Small", [manifest["Barack_Obama"][0].b64()])
    assert response.status_code == 422
    image = response.json()["error"]["details"]["images"][0]
    assert image["code"] == "face_too_small" and "too small" in image["reason"]


def test_a_face_that_is_already_someone_else_is_refused_with_409(acme, manifest):
    org, client = acme.org, acme.client
    assert register(client, "Barack Obama", [manifest["Barack_Obama"][0].b64()]).status_code == 201
    hijack = register(client, "Not Obama", [manifest["Barack_Obama"][1].b64()])
    assert hijack.status_code == 409, hijack.content
    error = hijack.json()["error"]
    assert error["code"] == "face_matches_existing_person"
    assert error["details"]["person"]["name"] == "Barack Obama"
    assert list(Person.objects.filter(organization=org).values_list("name", flat=True)) == ["Barack Obama"]

    allowed = register(client, "Not Obama", [manifest["Barack_Obama"][1].b64()], allow_duplicate=True)
    assert allowed.status_code == 201, allowed.content
    # Adding more photos to the same person is no hijack.
    more = register(client, "Barack Obama", [manifest["Barack_Obama"][2].b64()])
    assert more.status_code == 201, more.content


def test_the_same_image_twice_is_stored_once(acme, manifest):
    org, client = acme.org, acme.client
    photo = manifest["Angelina_Jolie"][0]
    first = register(client, "Angelina", [photo.b64(), photo.b64()])
    assert first.status_code == 201, first.content
    assert first.json()["faces_added"] == 1
    assert [image["code"] for image in first.json()["images"]] == [None, "duplicate_image"]
    again = register(client, "Angelina", [photo.b64()])
    assert again.status_code == 201, again.content
    assert again.json()["faces_added"] == 0
    assert again.json()["images"][0]["code"] == "duplicate_image"
    assert again.json()["images"][0]["face_id"] == first.json()["images"][0]["face_id"]
    assert Face.objects.filter(organization=org).count() == 1


def test_a_malformed_box_or_one_box_too_many_is_a_400_that_stores_no_one(acme, manifest):
    org, client = acme.org, acme.client
    response = register(client, "X", [manifest["Barack_Obama"][0].b64()], boxes=[{"x": 1}])
    assert response.status_code == 400 and response.json()["error"]["details"]["field"] == "boxes"
    response = register(client, "X", [manifest["Barack_Obama"][0].b64()], boxes=[None, None])
    assert response.status_code == 400
    assert not Person.objects.filter(organization=org).exists()


def test_yaw_ratio_is_near_zero_for_a_frontal_face_and_large_for_a_turned_one():
    from faces.quality import yaw_ratio

    frontal = np.array([[60, 50], [40, 50], [140, 50], [160, 50], [100, 90]], dtype=float)
    turned = frontal.copy()
    turned[4, 0] = 150
    assert yaw_ratio(frontal) < 0.05 < 0.4 < yaw_ratio(turned)
