"""Keeping unknown faces: off by default, on per organisation, only faces decided unknown that pass
the enrolment gates, never a face of someone enrolled, once per interval on the socket."""

from __future__ import annotations

import pytest
from channels.testing import WebsocketCommunicator

from faces.models import UnknownFace
from tests.websocket import ORIGIN, application, socket_path

pytestmark = pytest.mark.django_db(transaction=True)

STRANGER_A, STRANGER_B = "Simon_Helberg", "Kunal_Nayyar"


def keep_on(org, **extra):
    for name, value in {"keep_unknown_faces": True, **extra}.items():
        setattr(org, name, value)
    org.save()


def recognize(client, photo, **extra):
    response = client.post("/recognize/acme", {"image": photo.b64(), **extra}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def test_off_by_default_and_the_answer_says_so(acme, manifest):
    body = recognize(acme.client, manifest[STRANGER_A][0])
    assert body["keep_unknown_faces"] is False
    assert body["faces"][0]["decision"] == "unknown" and body["faces"][0]["unknown_face"] is None
    assert not UnknownFace.objects.exists()


def test_unknown_faces_are_kept_with_crop_embedding_time_and_key(acme, manifest):
    keep_on(acme.org)
    photos = manifest[STRANGER_A][:2] + manifest[STRANGER_B][:1]
    ids = []
    for photo in photos:
        body = recognize(acme.client, photo)
        assert body["keep_unknown_faces"] is True
        face = body["faces"][0]
        assert face["decision"] == "unknown"
        ids.append(face["unknown_face"])
    assert None not in ids and len(set(ids)) == 3
    for kept in UnknownFace.objects.filter(pk__in=ids):
        assert kept.organization_id == acme.org.pk
        assert bytes(kept.crop)[:2] == b"\xff\xd8"  # a JPEG
        assert len(bytes(kept.embedding)) == 128 * 4
        assert kept.api_key_id == acme.issued.api_key.pk and kept.api_key_name == acme.issued.api_key.name
        assert kept.source == "rest" and kept.seen_at is not None


def test_a_face_of_someone_enrolled_is_never_kept_even_with_a_strict_request_threshold(acme, manifest):
    keep_on(acme.org)
    photos = manifest["Tony_Blair"]
    register = acme.client.post("/register/acme", {"name": "Tony Blair", "images": [p.b64() for p in photos[:3]]},
                                format="json")
    assert register.status_code == 201
    for photo in photos[3:6]:
        assert recognize(acme.client, photo)["faces"][0]["decision"] == "match"
        # Asking for an impossible threshold makes the face "unknown" for this answer, but the
        # organisation's own decision still names it: nothing is kept.
        strict = recognize(acme.client, photo, threshold=0.9999)["faces"][0]
        assert strict["decision"] == "unknown" and strict["unknown_face"] is None
    assert not UnknownFace.objects.exists()


def test_faces_failing_the_enrolment_gates_are_not_kept(acme, manifest, settings):
    keep_on(acme.org)
    settings.FACEPORTAL_ENROL_MIN_FACE_PIXELS = 100_000  # no face is large enough
    face = recognize(acme.client, manifest[STRANGER_A][0])["faces"][0]
    assert face["decision"] == "unknown" and face["unknown_face"] is None
    assert not UnknownFace.objects.exists()


def test_the_newest_win_over_the_cap(acme, manifest):
    keep_on(acme.org, unknown_max_kept=2)
    ids = [recognize(acme.client, photo)["faces"][0]["unknown_face"] for photo in manifest[STRANGER_A][:4]]
    assert sorted(UnknownFace.objects.values_list("id", flat=True)) == sorted(ids[-2:])


def test_other_organisations_do_not_keep_and_see_nothing(acme, make_tenant, manifest):
    keep_on(acme.org)
    globex = make_tenant("globex", user="bob")
    response = globex.client.post("/recognize/globex", {"image": manifest[STRANGER_A][0].b64()}, format="json")
    assert response.json()["keep_unknown_faces"] is False
    assert not UnknownFace.objects.exists()


async def test_a_face_in_view_on_the_socket_is_kept_once_per_interval(acme, manifest, settings):
    from asgiref.sync import sync_to_async

    settings.FACEPORTAL_UNKNOWN_KEEP_INTERVAL = 3600
    await sync_to_async(keep_on)(acme.org)
    communicator = WebsocketCommunicator(application, socket_path(acme.issued), headers=[ORIGIN])
    connected, _ = await communicator.connect(timeout=30)
    assert connected
    ready = await communicator.receive_json_from(timeout=60)
    assert ready["type"] == "ready" and ready["keep_unknown_faces"] is True
    frame = manifest[STRANGER_A][0].data_uri()
    kept = []
    for _ in range(4):
        await communicator.send_json_to({"type": "frame", "image": frame})
        while (reply := await communicator.receive_json_from(timeout=60))["type"] != "result":
            pass
        assert reply["faces"][0]["decision"] == "unknown"
        kept.append(reply["faces"][0]["unknown_face"])
    await communicator.disconnect()
    assert kept[0] is not None and kept[1:] == [None, None, None]
    rows = await sync_to_async(list)(UnknownFace.objects.values_list("id", "source"))
    assert rows == [(kept[0], "websocket")]


def test_staff_try_it_photos_are_never_kept(acme, manifest, admin_client):
    keep_on(acme.org)
    photo = manifest[STRANGER_A][0]
    with open(photo.path, "rb") as handle:
        response = admin_client.post(f"/admin/organizations/organization/{acme.org.pk}/try/recognize/",
                                     {"image": handle})
    assert response.status_code == 200, response.content
    face = response.json()["faces"][0]
    assert face["decision"] == "unknown" and face["unknown_face"] is None
    assert not UnknownFace.objects.exists()


async def test_turning_keeping_on_reaches_a_socket_already_open(acme, manifest, settings, monkeypatch):
    from asgiref.sync import sync_to_async

    from recognition import realtime

    monkeypatch.setattr(realtime, "KEEP_SETTINGS_TTL", 0.0, raising=False)
    settings.FACEPORTAL_UNKNOWN_KEEP_INTERVAL = 0
    communicator = WebsocketCommunicator(application, socket_path(acme.issued), headers=[ORIGIN])
    connected, _ = await communicator.connect(timeout=30)
    assert connected
    assert (await communicator.receive_json_from(timeout=60))["type"] == "ready"
    frame = manifest[STRANGER_A][0].data_uri()

    async def one_frame() -> dict:
        await communicator.send_json_to({"type": "frame", "image": frame})
        while (reply := await communicator.receive_json_from(timeout=60))["type"] != "result":
            pass
        return reply

    off = await one_frame()
    assert off["keep_unknown_faces"] is False and off["faces"][0]["unknown_face"] is None
    await sync_to_async(keep_on)(acme.org)  # as staff do, while the socket is open
    on = await one_frame()
    assert on["keep_unknown_faces"] is True and on["faces"][0]["unknown_face"] is not None
    await communicator.disconnect()
    assert await sync_to_async(UnknownFace.objects.count)() == 1
