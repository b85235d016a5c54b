"""The recognition WebSocket through the real ASGI application: auth, tenancy, bad frames,
stale-frame dropping. Real PostgreSQL and Redis, the real model on real photos."""

from __future__ import annotations

import json
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apikeys.services import api_key_revoke
from faces.engine import get_engine
from faces.matching import uncalibrated_threshold
from faces.services import person_register
from recognition.connections import CLOSE_BAD_REQUEST, CLOSE_FORBIDDEN, CLOSE_KEY_REVOKED, CLOSE_UNAUTHORIZED
from tests.image_samples import gif_with_comments, png_with_chunks, progressive_jpeg_repeating_last_scan
from tests.photos import STRANGERS
from tests.websocket import ORIGIN, application, socket_path

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 60  # the first frame may load the model


async def open_socket(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN])
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def ready_socket(path: str) -> tuple[WebsocketCommunicator, dict]:
    communicator = await open_socket(path)
    ready = await communicator.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "ready", ready
    return communicator, ready


async def close_of(communicator: WebsocketCommunicator) -> dict:
    """Skip replies until the server closes; return the close message, with the final error
    message that preceded it (daphne drops close reasons, so that message carries the reason)."""
    last = None
    while True:
        output = await communicator.receive_output(timeout=TIMEOUT)
        if output["type"] == "websocket.close":
            return {**output, "final": last}
        last = json.loads(output["text"]) if output.get("text") else None


async def reply(communicator: WebsocketCommunicator) -> dict:
    return await communicator.receive_json_from(timeout=TIMEOUT)


@pytest.fixture
def acme_key(acme, manifest):
    """acme's key, with Barack Obama registered."""
    person_register(organization=acme.org, name="Barack Obama",
                    images=[p.b64() for p in manifest["Barack_Obama"][:2]])
    return acme.issued


@pytest.fixture
def globex(make_org, make_key, manifest):
    org = make_org("globex")
    person_register(organization=org, name="Angelina Jolie",
                    images=[p.b64() for p in manifest["Angelina_Jolie"][:2]])
    return make_key(org, user="bob", name="kiosk")


@pytest.fixture
def obama_probe(manifest):
    return manifest["Barack_Obama"][2]


async def test_valid_key_connects_and_recognises_a_json_frame(acme_key, obama_probe):
    communicator, ready = await ready_socket(socket_path(acme_key))
    assert ready["organization"] == "acme" and ready["drop_stale"] is True
    assert ready["limits"]["max_frame_bytes"] > 100_000

    await communicator.send_json_to({"image": obama_probe.data_uri(), "max_results": 2})
    result = await reply(communicator)
    assert result["type"] == "result" and result["seq"] == 1
    assert len(result["faces"]) == 1
    face = result["faces"][0]
    assert face["match"]["name"] == "Barack Obama"
    assert face["box"]["w"] > 20
    assert {"decode", "detect", "embed", "queued", "server"} <= set(result["timings_ms"])
    assert result["counters"] == {"received": 1, "processed": 1, "dropped_stale": 0, "rejected": 0}
    await communicator.disconnect()


async def test_binary_jpeg_frame_gives_the_same_answer_as_rest(acme_key, obama_probe):
    from tests.conftest import key_client

    rest = await database_sync_to_async(
        lambda: key_client(acme_key).post("/recognize/acme", {"image": obama_probe.b64()}, format="json").json()
    )()
    communicator, _ = await ready_socket(socket_path(acme_key))
    await communicator.send_to(bytes_data=obama_probe.path.read_bytes())
    result = await reply(communicator)
    assert result["type"] == "result"
    # The same faces and decisions; the socket adds each face's track (docs/WEBSOCKET.md, "Tracking").
    assert [face.pop("track") for face in result["faces"]] == [1]
    assert result["faces"] == rest["faces"]
    assert result["threshold"] == rest["threshold"]
    await communicator.disconnect()


DECISION_FIELDS = ("threshold", "threshold_source", "false_match_rate", "gallery_size", "calibrated_for")


def decision_of(answer: dict) -> dict:
    """What decided: the answer's decision fields (absent ones too), and each face's outcome."""
    fields = {name: answer.get(name) for name in DECISION_FIELDS}
    faces = [(face["decision"], face["threshold"], face["match"]) for face in answer.get("faces", [])]
    return {**fields, "faces": faces}


async def test_ready_and_each_result_state_the_decision_as_rest_does(acme, acme_key, manifest):
    """The socket decides as `POST /recognize` does, and says so: `ready` and every result carry
    the organisation's false_match_rate, the gallery size and the threshold derived from them.
    A threshold decides only once the client sends one, and the answers then say "request"."""
    from tests.conftest import key_client

    for name in ("Joe_Biden", "Tony_Blair", "Donald_Rumsfeld"):
        await database_sync_to_async(person_register)(
            organization=acme.org, name=name.replace("_", " "),
            images=[p.b64() for p in manifest[name][:2]])
    # Obama's photos include ones dlib decides alone and ones the cascade fuses with FaceNet's score.
    obama = manifest["Barack_Obama"][2:]
    probes = [*obama, *(manifest[name][0] for name in STRANGERS)]
    api = key_client(acme_key)
    engine = get_engine()
    before = engine.second_faces
    rest = [await database_sync_to_async(
        lambda photo=photo: api.post("/recognize/acme", {"image": photo.b64()}, format="json").json())()
        for photo in probes]
    fused_over_rest = engine.second_faces - before
    assert all(answer["threshold_source"] == "calibrated" and answer["gallery_size"] == 4 for answer in rest)
    assert all(answer["calibrated_for"] == engine.combination == "Dlib+Facenet512" for answer in rest)
    assert not any(answer["faces"][0]["match"] for answer in rest[len(obama):])
    assert any(answer["faces"][0]["match"] for answer in rest[:len(obama)])
    assert fused_over_rest > 0, "no probe reached the cascade's band: the fused decision went untested"

    # Frame by frame, as REST decides (track=0): a tracked connection may detect a large face at half
    # size, which moves a face's similarities in the third decimal (tests/recognition/test_tracking.py).
    communicator, ready = await ready_socket(socket_path(acme_key, track="0"))
    assert {name: ready.get(name) for name in DECISION_FIELDS} == {name: rest[0][name] for name in DECISION_FIELDS}
    assert ready["false_match_rate"] == 0.001 and "default_threshold" not in ready
    # The fallback is named as such, and is not what decides while the model is calibrated.
    assert ready["uncalibrated_threshold"] == uncalibrated_threshold() != ready["threshold"]

    before = engine.second_faces
    for photo, expected in zip(probes, rest, strict=True):
        await communicator.send_json_to({"image": photo.data_uri()})
        result = await reply(communicator)
        assert result["type"] == "result", result
        assert decision_of(result) == decision_of(expected), photo.path
    assert engine.second_faces - before == fused_over_rest  # the same faces went to the second model

    # An explicit override names the stranger and says where its threshold came from ...
    stranger = probes[len(obama)]
    await communicator.send_json_to({"type": "settings", "threshold": 0.9})
    assert (await reply(communicator))["type"] == "settings"
    await communicator.send_to(bytes_data=stranger.path.read_bytes())
    overridden = await reply(communicator)
    assert overridden["threshold_source"] == "request" and overridden["threshold"] == 0.9
    assert overridden["faces"][0]["match"] is not None
    assert "false_match_rate" not in overridden and "gallery_size" not in overridden
    # ... and clearing it hands the decision back to the organisation's rate.
    await communicator.send_json_to({"type": "settings", "threshold": None})
    assert (await reply(communicator))["threshold"] is None
    await communicator.send_to(bytes_data=stranger.path.read_bytes())
    assert decision_of(await reply(communicator)) == decision_of(rest[len(obama)])
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("params", "expected_code"),
    [
        ({}, CLOSE_BAD_REQUEST),
        ({"token": None}, CLOSE_BAD_REQUEST),
        ({"token": "fp_000000000000_not-a-real-secret"}, CLOSE_UNAUTHORIZED),
        ({"token": "garbage"}, CLOSE_UNAUTHORIZED),
        ({"organization": "globex"}, CLOSE_FORBIDDEN),
        ({"organization": "no-such-org"}, CLOSE_FORBIDDEN),
        ({"user": "mallory"}, CLOSE_FORBIDDEN),
        ({"api_key_name": "other"}, CLOSE_FORBIDDEN),
    ],
)
async def test_refused_handshakes_close_with_a_distinct_code_and_reason(acme_key, globex, params, expected_code):
    path = socket_path(None) if params == {} else socket_path(acme_key, **params)
    communicator = await open_socket(path)
    closed = await close_of(communicator)
    assert closed["code"] == expected_code
    assert closed["reason"]
    assert "fp_" not in closed["reason"]
    final = closed["final"]
    assert final["type"] == "error" and final["close_code"] == expected_code, final
    assert final["error"]["message"] == closed["reason"] and final["error"]["code"], final


async def test_tampered_secret_is_refused(acme_key):
    tampered = acme_key.plaintext[:-4] + ("AAAA" if not acme_key.plaintext.endswith("AAAA") else "BBBB")
    communicator = await open_socket(socket_path(acme_key, token=tampered))
    assert (await close_of(communicator))["code"] == CLOSE_UNAUTHORIZED


async def test_revoked_key_is_refused_at_handshake_and_cut_off_mid_connection(acme_key, obama_probe):
    communicator, _ = await ready_socket(socket_path(acme_key))
    await communicator.send_json_to({"image": obama_probe.b64()})
    assert (await reply(communicator))["type"] == "result"

    await database_sync_to_async(api_key_revoke)(api_key=acme_key.api_key)

    await communicator.send_json_to({"image": obama_probe.b64()})
    answer = await reply(communicator)
    assert answer["type"] == "error" and answer["error"]["code"] == "api_key_revoked"
    assert "faces" not in answer
    closed = await close_of(communicator)
    assert closed["code"] == CLOSE_KEY_REVOKED
    assert closed["final"]["close_code"] == CLOSE_KEY_REVOKED
    assert closed["final"]["error"]["code"] == "api_key_revoked"

    again = await open_socket(socket_path(acme_key))
    assert (await close_of(again))["code"] == CLOSE_UNAUTHORIZED


async def test_message_naming_another_organisation_is_refused_and_never_searches_it(acme_key, globex, manifest):
    jolie = manifest["Angelina_Jolie"][2]
    communicator, _ = await ready_socket(socket_path(acme_key))

    await communicator.send_json_to({"image": jolie.b64(), "organization": "globex"})
    refused = await reply(communicator)
    assert refused["type"] == "error" and refused["error"]["code"] == "forbidden"
    assert refused["seq"] == 1 and "faces" not in refused

    # The connection lives on, and still searches only its own organisation.
    await communicator.send_json_to({"image": jolie.b64(), "organization": "acme"})
    own = await reply(communicator)
    assert own["type"] == "result" and own["seq"] == 2
    assert len(own["faces"]) == 1
    names = {c["name"] for face in own["faces"] for c in face["candidates"]}
    assert "Angelina Jolie" not in names
    assert own["faces"][0]["match"] is None
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("this is not json", "malformed_message"),
        (json.dumps([1, 2, 3]), "malformed_message"),
        (json.dumps({"threshold": 0.5}), "invalid_input"),
        (json.dumps({"image": 42}), "invalid_input"),
        (json.dumps({"image": "bm90IGFuIGltYWdl"}), "unsupported_image_format"),
        (json.dumps({"image": "https://example.com/face.jpg"}), "invalid_image"),
        (json.dumps({"image": "data:image/jpeg;base64,AAAA", "threshold": 7}), "invalid_input"),
        (json.dumps({"image": "data:image/jpeg;base64,AAAA", "max_results": 0}), "invalid_input"),
        (json.dumps({"type": "subscribe"}), "invalid_input"),
    ],
)
async def test_bad_frame_gets_an_error_reply_and_the_connection_lives_on(acme_key, obama_probe, message, code):
    communicator, _ = await ready_socket(socket_path(acme_key))
    await communicator.send_to(text_data=message)
    error = await reply(communicator)
    assert error["type"] == "error" and error["seq"] == 1
    assert error["error"]["code"] == code and error["error"]["message"]
    assert set(error["error"]) == {"code", "message", "details"}

    await communicator.send_to(bytes_data=obama_probe.path.read_bytes())
    result = await reply(communicator)
    assert result["type"] == "result" and result["seq"] == 2
    assert result["faces"][0]["match"]["name"] == "Barack Obama"
    assert result["counters"]["rejected"] == 1
    await communicator.disconnect()


async def test_oversized_and_corrupt_binary_frames_are_refused(acme_key, obama_probe, settings):
    settings.FACEPORTAL_WS_MAX_FRAME_BYTES = 50_000
    communicator, _ = await ready_socket(socket_path(acme_key))
    await communicator.send_to(bytes_data=b"\xff" * 60_000)
    assert (await reply(communicator))["error"]["code"] == "frame_too_large"
    await communicator.send_to(bytes_data=obama_probe.path.read_bytes()[:2000])
    assert (await reply(communicator))["error"]["code"] == "invalid_image"
    await communicator.send_json_to({"image": "x" * 70_000})
    assert (await reply(communicator))["error"]["code"] == "frame_too_large"
    await communicator.disconnect()


async def test_settings_message_sets_the_threshold_for_binary_frames(acme_key, obama_probe):
    communicator, _ = await ready_socket(socket_path(acme_key))
    await communicator.send_json_to({"type": "settings", "threshold": 0.999})
    settings_reply = await reply(communicator)
    assert settings_reply["type"] == "settings" and settings_reply["threshold"] == 0.999
    await communicator.send_to(bytes_data=obama_probe.path.read_bytes())
    strict = await reply(communicator)
    assert strict["threshold"] == 0.999
    assert strict["faces"][0]["match"] is None  # candidates still listed for a client tuning the slider
    assert strict["faces"][0]["candidates"][0]["name"] == "Barack Obama"
    await communicator.disconnect()


async def test_frame_rate_limit_answers_extra_frames_with_an_error(acme_key, obama_probe, settings):
    settings.FACEPORTAL_WS_MAX_FPS = 2
    communicator, _ = await ready_socket(socket_path(acme_key))
    jpeg = obama_probe.path.read_bytes()
    for _ in range(4):
        await communicator.send_to(bytes_data=jpeg)
    replies = [await reply(communicator) for _ in range(4)]
    limited = [r for r in replies if r["type"] == "error"]
    assert [r["error"]["code"] for r in limited] == ["rate_limited", "rate_limited"]
    assert sorted(r["seq"] for r in limited) == [3, 4]
    assert sorted(r["seq"] for r in replies if r["type"] == "result") == [1, 2]
    await communicator.disconnect()


async def test_stale_frames_are_dropped_and_the_newest_frame_is_answered(acme_key, obama_probe):
    communicator, _ = await ready_socket(socket_path(acme_key))
    jpeg = obama_probe.path.read_bytes()
    burst = 12
    for _ in range(burst):
        await communicator.send_to(bytes_data=jpeg)
    answers = []
    while not answers or answers[-1]["seq"] != burst:
        answers.append(await reply(communicator))
    assert all(a["type"] == "result" for a in answers)
    assert len(answers) < burst  # a CPU cannot embed frames as fast as they were sent
    seqs = [a["seq"] for a in answers]
    assert seqs == sorted(seqs)
    counters = answers[-1]["counters"]
    assert counters["received"] == burst
    assert counters["dropped_stale"] >= 1
    assert counters["processed"] + counters["dropped_stale"] + counters["rejected"] == burst
    assert counters["processed"] == len(answers)
    await communicator.disconnect()


async def test_opting_out_of_dropping_answers_every_frame_in_order(acme_key, obama_probe):
    communicator, ready = await ready_socket(socket_path(acme_key, drop_stale="0"))
    assert ready["drop_stale"] is False
    jpeg = obama_probe.path.read_bytes()
    for _ in range(4):
        await communicator.send_to(bytes_data=jpeg)
    answers = [await reply(communicator) for _ in range(4)]
    assert [a["seq"] for a in answers] == [1, 2, 3, 4]
    assert answers[-1]["counters"]["dropped_stale"] == 0
    await communicator.disconnect()


async def test_origin_from_another_site_is_refused(acme_key):
    communicator = WebsocketCommunicator(application, socket_path(acme_key), headers=[(b"origin", b"http://evil.example")])
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert not connected


async def test_frames_too_complex_to_decode_are_refused_at_once_and_the_socket_goes_on(acme_key, obama_probe):
    communicator, _ = await ready_socket(socket_path(acme_key))
    for frame in (progressive_jpeg_repeating_last_scan((640, 480), 3000), gif_with_comments(30_000),
                  png_with_chunks(30_000)):
        started = time.perf_counter()
        await communicator.send_to(bytes_data=frame)
        answer = await reply(communicator)
        assert answer["error"]["code"] == "image_too_complex", answer
        assert time.perf_counter() - started < 5  # was tens of seconds for the scan bomb
    await communicator.send_to(bytes_data=obama_probe.path.read_bytes())
    assert (await reply(communicator))["faces"][0]["match"]["name"] == "Barack Obama"
    await communicator.disconnect()
