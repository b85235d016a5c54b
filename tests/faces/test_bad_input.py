"""Every kind of bad image input gets a 4xx JSON error naming the image, and stores nothing."""

import base64
import io

import pytest
from PIL import Image

from faces.index import get_index
from faces.models import EmbeddedVector, Face, Person
from tests.image_samples import png_claiming

pytestmark = pytest.mark.django_db




def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (120, 80, 40)).save(buffer, format="JPEG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_IMAGES = {
    "invalid base64": ("not base64 at all!!", "invalid_image"),
    "non-image bytes": (b64(b"%PDF-1.4 this is not an image" * 10), "unsupported_image_format"),
    "truncated jpeg": (b64(jpeg_bytes()[:200]), "invalid_image"),
    "20000x20000 png header": (b64(png_claiming(20000, 20000)), "image_too_large"),
    "url to loopback": ("http://127.0.0.1:8000/secret.jpg", "image_url_forbidden"),
    "url to cloud metadata": ("http://169.254.169.254/latest/meta-data/", "image_url_forbidden"),
    "file url": ("file:///etc/passwd", "image_url_forbidden"),
    "path with ..": ("../../etc/passwd.jpg", "image_path_forbidden"),
    "bad data uri": ("data:image/png;base64,@@@@", "invalid_image"),
    "empty string": ("", "invalid_image"),
    "a number": (12345, "invalid_image"),
}


@pytest.mark.parametrize("label", list(BAD_IMAGES))
def test_bad_image_on_register_is_reported_per_image_and_alone_is_4xx(acme, manifest, label):
    org, _, client = acme
    bad, code = BAD_IMAGES[label]
    good = manifest["Tony_Blair"][0].b64()
    # Among good images, a bad one is reported in its own outcome and does not stop the others.
    response = client.post("/register/acme", {"name": "Blair", "images": [good, bad]}, format="json")
    assert response.status_code == 201, response.content
    outcome = response.json()["images"][1]
    assert (outcome["index"], outcome["accepted"], outcome["code"], outcome["face_id"]) == (1, False, code, None)
    assert Face.objects.count() == 1 and EmbeddedVector.objects.count() == 1
    assert get_index().count(organization_id=org.pk) == 1
    # Alone, it is a clear 4xx and stores nothing.
    alone = client.post("/register/acme", {"name": "Other", "images": [bad]}, format="json")
    assert 400 <= alone.status_code < 500, alone.content
    error = alone.json()["error"]
    assert error["code"] == code
    assert error["details"]["image_index"] == 0
    assert not Person.objects.filter(name="Other").exists() and Face.objects.count() == 1
    assert get_index().count(organization_id=org.pk) == 1


@pytest.mark.parametrize("label", ["invalid base64", "truncated jpeg", "20000x20000 png header", "url to loopback"])
def test_bad_image_on_recognize_is_4xx(acme, label):
    client = acme.client
    bad, code = BAD_IMAGES[label]
    response = client.post("/recognize/acme", {"image": bad}, format="json")
    assert 400 <= response.status_code < 500
    assert response.json()["error"]["code"] == code


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "x", "images": []}, "images"),
        ({"name": "x"}, "images"),
        ({"name": "x", "images": "notalist"}, "images"),
        ({"name": "", "images": ["x"]}, "name"),
        ({"name": 7, "images": ["x"]}, "name"),
        ({"name": "x", "images": ["a"] * 11}, "images"),
    ],
)
def test_bad_register_bodies(acme, body, field):
    client = acme.client
    response = client.post("/register/acme", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == field
    assert not Person.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [({}, "image"), ({"image": "x", "threshold": 2}, "threshold"), ({"image": "x", "threshold": "high"}, "threshold"),
     ({"image": "x", "max_results": 0}, "max_results"), ({"image": "x", "max_results": True}, "max_results")],
)
def test_bad_recognize_bodies(acme, body, field):
    client = acme.client
    response = client.post("/recognize/acme", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["details"]["field"] == field


def test_server_paths_only_below_image_root(acme, manifest, faces_dir, settings, tmp_path):
    client = acme.client
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "acme").symlink_to(faces_dir)  # the organisation's own folder (a symlink is fine)
    settings.FACEPORTAL_IMAGE_ROOT = str(shared)
    inside = client.post("/recognize/acme", {"image": "Tony_Blair/2.jpg"}, format="json")
    assert inside.status_code == 200 and len(inside.json()["faces"]) == 1
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(manifest["Tony_Blair"][1].path.read_bytes())
    link_root = tmp_path / "root"
    (link_root / "acme").mkdir(parents=True)
    (link_root / "acme" / "escape.jpg").symlink_to(outside)
    settings.FACEPORTAL_IMAGE_ROOT = str(link_root)
    escaped = client.post("/recognize/acme", {"image": "escape.jpg"}, format="json")
    missing = client.post("/recognize/acme", {"image": "no-such-file.jpg"}, format="json")
    assert escaped.status_code == 400
    assert escaped.json()["error"]["code"] == "image_path_not_found"
    assert escaped.json()["error"] == missing.json()["error"]  # a way out reads as a missing file
    settings.FACEPORTAL_IMAGE_ROOT = None
    disabled = client.post("/recognize/acme", {"image": {"path": "Tony_Blair/2.jpg"}}, format="json")
    assert disabled.status_code == 400
    assert disabled.json()["error"]["code"] == "image_path_forbidden"


def test_data_uri_and_object_forms_are_accepted(acme, manifest):
    client = acme.client
    photo = manifest["Tony_Blair"][1]
    for image in (photo.data_uri(), {"base64": photo.b64()}):
        response = client.post("/recognize/acme", {"image": image}, format="json")
        assert response.status_code == 200, response.content
        assert len(response.json()["faces"]) == 1
