"""Webhooks end to end: a real http.server thread on 127.0.0.1 receives the deliveries (with
FACEPORTAL_WEBHOOK_ALLOW_PRIVATE on, as a home server posting to its LAN would), the delivery
thread is the one the server starts, and the events come from real recognitions of real photos,
over REST and over the WebSocket."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from faces.models import EnrolmentJob
from faces.services import person_register
from faces.signals import enrolment_job_finished
from recognition.models import Webhook, WebhookDelivery
from recognition.webhooks.delivery import deliver_due, deliveries_prune, start_webhook_runner
from recognition.webhooks.services import webhook_event_fire
from tests.conftest import api_auth

SECRET = "a-webhook-secret-of-some-length"
WAIT = 20.0


class Receiver(BaseHTTPRequestHandler):
    """Records each POST (headers and body) and answers the next scripted status (then 200)."""

    def do_POST(self):  # noqa: N802 - http.server's name
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with self.server.lock:
            status = self.server.script.pop(0) if self.server.script else 200
            self.server.received.append({"headers": dict(self.headers), "body": body, "at": time.monotonic()})
        self.send_response(status)
        if 300 <= status < 400:
            self.send_header("Location", self.server.redirect_to)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def start_receiver(*statuses: int) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.script, server.received, server.lock = list(statuses), [], threading.Lock()
    server.redirect_to = "http://127.0.0.1:1/"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def receiver():
    servers = []

    def factory(*statuses: int) -> ThreadingHTTPServer:
        servers.append(start_receiver(*statuses))
        return servers[-1]

    yield factory
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def fast_retries(settings):
    settings.FACEPORTAL_WEBHOOK_ALLOW_PRIVATE = True
    settings.FACEPORTAL_WEBHOOK_BACKOFF_SECONDS = 0.1
    settings.FACEPORTAL_WEBHOOK_MAX_ATTEMPTS = 3
    settings.FACEPORTAL_WEBHOOK_TIMEOUT = 5.0
    return settings


@pytest.fixture
def runner():
    """The delivery thread the server starts, polling fast; stopped at the end."""
    stop = threading.Event()
    threads = []

    def start():
        threads.append(start_webhook_runner(poll=0.05, stop=stop))
        return threads[-1]

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


def url_of(server: ThreadingHTTPServer, path: str = "/hook", host: str = "127.0.0.1") -> str:
    return f"http://{host}:{server.server_address[1]}{path}"


def wait_for(condition, *, seconds: float = WAIT):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def signature_ok(request: dict, secret: str = SECRET) -> bool:
    """What docs/WEBHOOKS.md tells a receiver to do."""
    headers = {name.lower(): value for name, value in request["headers"].items()}
    timestamp = headers["x-faceportal-timestamp"]
    expected = "sha256=" + hmac.new(secret.encode(), timestamp.encode() + b"." + request["body"],
                                    hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) < 300
    return fresh and hmac.compare_digest(expected, headers["x-faceportal-signature"])


def create(client, url: str, events=("face.recognized",), secret: str = SECRET, org: str = "acme"):
    return client.post(f"/orgs/{org}/webhooks", {"url": url, "events": list(events), "secret": secret}, format="json")


# --- Subscribing ------------------------------------------------------------------------------------

PRIVATE_NETWORKS = [ipaddress.ip_network(net) for net in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "100.64.0.0/10",
    "::1/128", "fc00::/7", "fe80::/10",
)]


@st.composite
def private_urls(draw) -> str:
    network = draw(st.sampled_from(PRIVATE_NETWORKS))
    address = network[draw(st.integers(0, min(network.num_addresses - 1, 2**32)))]
    host = f"[{address}]" if address.version == 6 else str(address)
    scheme = draw(st.sampled_from(["http", "https"]))
    port = draw(st.one_of(st.just(""), st.integers(1, 65535).map(lambda p: f":{p}")))
    return f"{scheme}://{host}{port}/{draw(st.text('abc/-_', max_size=12))}"


@pytest.mark.django_db
@hypothesis_settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(url=private_urls())
def test_a_private_target_is_refused_at_creation_by_default(acme, url):
    answer = create(acme.client, url)
    assert answer.status_code == 400, answer.content
    assert answer.json()["error"]["code"] == "webhook_url_forbidden"
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_a_name_resolving_privately_is_refused_at_creation(acme):
    answer = create(acme.client, "http://localhost:8080/hook")
    assert answer.status_code == 400 and "private" in answer.json()["error"]["message"], answer.content
    assert not Webhook.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("body, field", [
    ({"url": "ftp://example.com/x", "events": ["face.recognized"], "secret": SECRET}, "url"),
    ({"url": "file:///etc/passwd", "events": ["face.recognized"], "secret": SECRET}, "url"),
    ({"url": "http://user:pw@example.com/", "events": ["face.recognized"], "secret": SECRET}, "url"),
    ({"url": "not a url", "events": ["face.recognized"], "secret": SECRET}, "url"),
    ({"url": "http://example.com/", "events": ["face.everything"], "secret": SECRET}, "events"),
    ({"url": "http://example.com/", "events": [], "secret": SECRET}, "events"),
    ({"url": "http://example.com/", "events": "face.recognized", "secret": SECRET}, "events"),
    ({"url": "http://example.com/", "events": ["face.recognized"], "secret": "short"}, "secret"),
    ({"url": "http://example.com/", "events": ["face.recognized"]}, "secret"),
    ({"url": 7, "events": ["face.recognized"], "secret": SECRET}, "url"),
])
def test_bad_input_is_a_400_naming_the_field_and_creates_nothing(acme, body, field):
    answer = acme.client.post("/orgs/acme/webhooks", body, format="json")
    assert answer.status_code == 400, answer.content
    error = answer.json()["error"]
    assert field in json.dumps(error), error
    assert not Webhook.objects.exists()


@pytest.mark.django_db
def test_the_secret_is_shown_once_and_webhooks_list_and_delete(acme, fast_retries, receiver):
    server = receiver()
    created = create(acme.client, url_of(server), events=["person.created", "face.unknown"])
    assert created.status_code == 201, created.content
    hook = created.json()
    assert hook["secret"] == SECRET and hook["events"] == ["face.unknown", "person.created"]
    listed = acme.client.get("/orgs/acme/webhooks").json()["results"]
    assert [item["id"] for item in listed] == [hook["id"]]
    assert SECRET not in json.dumps(listed) and "secret" not in listed[0]
    deliveries = acme.client.get(f"/orgs/acme/webhooks/{hook['id']}/deliveries")
    assert deliveries.status_code == 200 and deliveries.json()["results"] == []
    body = {"api_auth": api_auth(acme.issued)}
    assert acme.client.delete(f"/orgs/acme/webhooks/{hook['id']}", body, format="json").status_code == 204
    assert acme.client.delete(f"/orgs/acme/webhooks/{hook['id']}", body, format="json").status_code == 404
    assert acme.client.get("/orgs/acme/webhooks").json()["results"] == []


# --- Delivering ----------------------------------------------------------------------------------


def hook_for(org, server, events=("face.recognized",), **kwargs) -> Webhook:
    return Webhook.objects.create(organization=org, url=url_of(server, **kwargs), events=list(events), secret=SECRET)


@pytest.mark.django_db(transaction=True)
def test_a_delivery_is_signed_and_retried_after_a_500(acme, fast_retries, receiver, runner, caplog):
    caplog.set_level(logging.DEBUG)
    server = receiver(500)
    hook = hook_for(acme.org, server)
    webhook_event_fire(organization=acme.org, event="face.recognized", payload={"person": {"id": 1}})
    runner()
    wait_for(lambda: len(server.received) == 2)
    first, second = server.received
    assert all(signature_ok(request) for request in server.received)
    assert not signature_ok(second, secret=SECRET + "x")  # the check can fail
    assert first["body"] == second["body"]  # the same event, resent as it was
    event = json.loads(second["body"])
    assert event["event"] == "face.recognized" and event["organization"] == "acme" and event["person"] == {"id": 1}
    assert second["at"] - first["at"] >= 0.1  # after the backoff, not at once
    delivery = wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").first())
    assert delivery.attempts == 2 and delivery.last_status_code == 200
    shown = acme.client.get(f"/orgs/acme/webhooks/{hook.pk}/deliveries").json()["results"]
    assert [(d["status"], d["attempts"], d["last_status_code"]) for d in shown] == [("delivered", 2, 200)]
    assert "webhook delivery" in caplog.text and SECRET not in caplog.text  # logged, the secret never


@pytest.mark.django_db
def test_finished_deliveries_are_pruned_after_a_week_and_pending_ones_never(acme):
    hook = Webhook.objects.create(organization=acme.org, url="https://a.example/", events=["face.unknown"],
                                  secret=SECRET)
    now = timezone.now()
    rows = {
        "old delivered": ("delivered", now - timedelta(days=8)), "old failed": ("failed", now - timedelta(days=8)),
        "recent delivered": ("delivered", now - timedelta(days=6)), "pending": ("pending", None),
    }
    ids = {name: WebhookDelivery.objects.create(webhook=hook, event="face.unknown", body="{}", status=status,
                                                finished_at=finished).pk for name, (status, finished) in rows.items()}
    assert deliveries_prune(now=now) == 2
    left = set(WebhookDelivery.objects.values_list("pk", flat=True))
    assert left == {ids["recent delivered"], ids["pending"]}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("answer", [500, 404, 302])
def test_retries_are_bounded_then_the_delivery_fails(acme, fast_retries, receiver, runner, answer):
    target = receiver()  # where a redirect points: never reached
    server = receiver(*[answer] * 10)
    server.redirect_to = url_of(target)
    hook_for(acme.org, server)
    webhook_event_fire(organization=acme.org, event="face.recognized", payload={})
    runner()
    delivery = wait_for(lambda: WebhookDelivery.objects.filter(status="failed").first())
    assert delivery.attempts == 3 and delivery.last_status_code == answer
    assert len(server.received) == 3 and target.received == []
    gaps = [b["at"] - a["at"] for a, b in pairwise(server.received)]
    assert gaps[0] >= 0.1 and gaps[1] >= 0.2  # the backoff doubles


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_target_resolving_privately_is_refused_at_send_time(acme, fast_retries, receiver, host):
    server = receiver()
    hook_for(acme.org, server, host=host)  # created while private targets were allowed
    fast_retries.FACEPORTAL_WEBHOOK_ALLOW_PRIVATE = False
    webhook_event_fire(organization=acme.org, event="face.recognized", payload={})
    assert deliver_due() == 1
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "failed" and delivery.attempts == 1 and "private" in delivery.last_error
    assert server.received == []


@pytest.mark.django_db(transaction=True)
def test_a_restart_resumes_persisted_pending_deliveries(acme, fast_retries, receiver, runner):
    server = receiver()
    hook = hook_for(acme.org, server)
    body = json.dumps({"event": "face.unknown", "organization": "acme"})
    # As a process that died left them: one never tried, one mid-retry, one whose lease ran out.
    past = timezone.now() - timedelta(seconds=5)
    WebhookDelivery.objects.create(webhook=hook, event="face.unknown", body=body)
    WebhookDelivery.objects.create(webhook=hook, event="face.unknown", body=body, attempts=1, next_attempt_at=past)
    WebhookDelivery.objects.create(webhook=hook, event="face.unknown", body=body, attempts=2, next_attempt_at=past)
    WebhookDelivery.objects.create(webhook=hook, event="face.unknown", body=body, status="delivered")
    runner()
    wait_for(lambda: WebhookDelivery.objects.filter(status="delivered").count() == 4)
    assert len(server.received) == 3 and all(signature_ok(request) for request in server.received)


# --- Events from recognition and from the gallery --------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rest_recognition_and_the_gallery_fire_their_events(acme, fast_retries, receiver, runner, manifest):
    server = receiver()
    events = ["face.recognized", "face.unknown", "person.created", "person.deleted"]
    assert create(acme.client, url_of(server), events=events).status_code == 201
    obama = manifest["Barack_Obama"]
    registered = acme.client.post("/register/acme", {"name": "Barack Obama", "external_id": "emp-44",
                                                     "images": [p.b64() for p in obama[:2]]}, format="json")
    assert registered.status_code in (200, 201), registered.content
    person_id = registered.json()["person"]["id"]
    assert acme.client.post("/recognize/acme", {"image": obama[2].b64()}, format="json").status_code == 200
    stranger = manifest["Angelina_Jolie"][0]
    assert acme.client.post("/recognize/acme", {"image": stranger.b64()}, format="json").status_code == 200
    assert acme.client.delete(f"/orgs/acme/people/{person_id}", format="json").status_code == 204
    runner()
    wait_for(lambda: len(server.received) == 4)
    assert all(signature_ok(request) for request in server.received)
    by_event = {json.loads(r["body"])["event"]: json.loads(r["body"]) for r in server.received}
    person = {"id": person_id, "name": "Barack Obama", "external_id": "emp-44"}
    assert by_event["person.created"]["person"] == person and by_event["person.deleted"]["person"] == person
    seen = by_event["face.recognized"]
    assert seen["organization"] == "acme" and seen["occurred_at"].endswith("Z")
    assert seen["decision"] == "match" and seen["person"] == person
    assert seen["threshold_source"] == "calibrated" and seen["gallery_size"] == 1 and seen["false_match_rate"] > 0
    assert 0 < seen["threshold"] <= seen["similarity"] <= 1
    assert seen["source"] == {"channel": "rest", "api_key_name": acme.issued.api_key.name}
    unknown = by_event["face.unknown"]
    assert unknown["decision"] in ("unknown", "ambiguous") and unknown["person"] is None


@pytest.mark.django_db(transaction=True)
async def test_a_socket_fires_one_event_per_person_per_interval(acme, fast_retries, manifest):
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from tests.websocket import ORIGIN, application, socket_path

    obama = manifest["Barack_Obama"]

    def prepare():
        person_register(organization=acme.org, name="Barack Obama", images=[p.b64() for p in obama[:2]])
        Webhook.objects.create(organization=acme.org, url="http://127.0.0.1:9/hook", events=["face.recognized"],
                               secret=SECRET)

    await database_sync_to_async(prepare)()
    count = database_sync_to_async(lambda: WebhookDelivery.objects.filter(event="face.recognized").count())

    async def frames_on_a_socket(count: int) -> None:
        communicator = WebsocketCommunicator(application, socket_path(acme.issued), headers=[ORIGIN])
        assert (await communicator.connect(timeout=60))[0]
        assert (await communicator.receive_json_from(timeout=60))["type"] == "ready"
        for _ in range(count):
            await communicator.send_json_to({"image": obama[2].data_uri()})
            result = await communicator.receive_json_from(timeout=60)
            assert result["type"] == "result" and result["faces"][0]["decision"] == "match", result
        await communicator.disconnect()

    fast_retries.FACEPORTAL_WEBHOOK_WS_INTERVAL = 60
    await frames_on_a_socket(5)
    assert await count() == 1  # one person in view for five frames: one event
    fast_retries.FACEPORTAL_WEBHOOK_WS_INTERVAL = 0  # the interval is the knob: none, and each frame fires
    await frames_on_a_socket(3)
    assert await count() == 4
    body = json.loads(await database_sync_to_async(lambda: WebhookDelivery.objects.first().body)())
    assert body["source"] == {"channel": "websocket", "api_key_name": acme.issued.api_key.name}
    assert body["person"]["name"] == "Barack Obama" and body["decision"] == "match"


@pytest.mark.django_db(transaction=True)
def test_a_merge_fires_person_deleted_for_the_person_merged_away(acme, manifest):
    hook = Webhook.objects.create(organization=acme.org, url="https://a.example/", events=["person.deleted"],
                                  secret=SECRET)
    keep = person_register(organization=acme.org, name="Tony Blair", images=[manifest["Tony_Blair"][0].b64()])
    other = person_register(organization=acme.org, name="T. Blair", external_id="tb-2", allow_duplicate=True,
                            images=[manifest["Tony_Blair"][1].b64()])
    assert not WebhookDelivery.objects.exists()  # created people: not subscribed
    merged = acme.client.post(f"/orgs/acme/people/{keep.person.pk}/merge", {"from": other.person.pk}, format="json")
    assert merged.status_code == 200, merged.content
    (delivery,) = WebhookDelivery.objects.filter(webhook=hook)
    assert json.loads(delivery.body)["person"] == {"id": other.person.pk, "name": "T. Blair", "external_id": "tb-2"}


@pytest.mark.django_db
@pytest.mark.parametrize("subscribed", [["enrolment_job.finished"], ["face.unknown", "enrolment_job.finished"]])
def test_other_code_fires_an_event_for_exactly_the_webhooks_that_want_it(acme, make_org, subscribed):
    wanted = Webhook.objects.create(organization=acme.org, url="https://a.example/", events=subscribed, secret=SECRET)
    Webhook.objects.create(organization=acme.org, url="https://b.example/", events=["face.unknown"], secret=SECRET)
    Webhook.objects.create(organization=make_org("globex"), url="https://c.example/",
                           events=["enrolment_job.finished"], secret=SECRET)
    fired = webhook_event_fire(organization=acme.org, event="enrolment_job.finished",
                               payload={"job": {"id": 5, "status": "finished", "people": 12}})
    assert fired == 1
    (delivery,) = WebhookDelivery.objects.all()
    body = json.loads(delivery.body)
    assert delivery.webhook_id == wanted.pk and delivery.status == "pending"
    assert body["event"] == "enrolment_job.finished" and body["organization"] == "acme"
    assert body["job"] == {"id": 5, "status": "finished", "people": 12} and body["event_id"]
    with pytest.raises(ValueError):
        webhook_event_fire(organization=acme.org, event="job.done", payload={})


def test_a_finished_enrolment_job_fires_its_event(acme):
    hook = Webhook.objects.create(organization=acme.org, url="https://a.example/", events=["enrolment_job.finished"],
                                  secret=SECRET)
    job = EnrolmentJob.objects.create(organization=acme.org, status="finished", total=3, done=3, faces_added=2)
    enrolment_job_finished.send(sender=EnrolmentJob, organization=acme.org, job=job)
    (delivery,) = WebhookDelivery.objects.filter(webhook=hook)
    body = json.loads(delivery.body)
    assert body["event"] == "enrolment_job.finished"
    assert body["job"] == {"id": job.pk, "status": "finished", "done": 3, "total": 3, "faces_added": 2}
