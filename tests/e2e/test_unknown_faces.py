"""Kept unknown faces on screen, in real headless Chromium against a real daphne, the real model on
real photos: the staff console's Unknown faces page (cluster cards; name one, dismiss another),
and the webcam page's "Who's this?" strip (a stranger in view, named from the strip). Each saves
screenshots into docs/screenshots/.
"""

from __future__ import annotations

import json
import time
import urllib.request

import pytest
from selenium.webdriver.common.by import By

from apikeys.services import api_key_issue
from faces.models import Person, UnknownFace
from organizations.services import organization_create
from tests.e2e.conftest import (
    camera_frame,
    fake_camera_browser,
    skip_module_without_browser,
    wait_for,
    write_y4m,
)
from tests.e2e.test_console import log_in, no_horizontal_overflow, resize, screenshot

skip_module_without_browser()

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Never enrolled anywhere in these tests; each has five photos in the set.
STRANGERS = {"Simon_Helberg": "Simon Helberg", "Kunal_Nayyar": "Kunal Nayyar"}
CAMERA_STRANGER = ("Lin_Manuel_Miranda", "Lin-Manuel Miranda")


@pytest.fixture
def browser(tmp_path, manifest):
    """Chromium whose fake camera shows a stranger."""
    video = tmp_path / "camera.y4m"
    write_y4m(video, camera_frame(manifest[CAMERA_STRANGER[0]][0].path), frames=15)
    with fake_camera_browser(tmp_path, video, console_log="e2e-unknown-faces-console.log",
                             hide_scrollbars=True) as driver:
        yield driver


@pytest.fixture
def keeping(transactional_db):
    """acme, keeping its unknown faces, and a key of it."""
    acme = organization_create(slug="acme")
    acme.keep_unknown_faces = True
    acme.save()
    return acme, api_key_issue(organization=acme, user="alice", name="webcam")


def recognize_over_http(base_url: str, key: str, photo) -> dict:
    request = urllib.request.Request(
        f"{base_url}/recognize/acme", data=json.dumps({"image": photo.b64()}).encode(), method="POST",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)


def cluster_cards(driver) -> dict[int, dict]:
    return {card["cluster"]: card for card in driver.execute_script(
        "return [...document.querySelectorAll('#unknown-clusters .fp-cluster')].map(c => ({"
        " cluster: +c.dataset.cluster, size: +c.querySelector('.fp-size').textContent,"
        " crops: [...c.querySelectorAll('.fp-crops img')].map(i => i.complete ? i.naturalWidth : 0)}));")}


def test_console_names_one_strangers_cluster_and_dismisses_the_others(live_server_url, browser, keeping, manifest):
    acme, issued = keeping
    kept: dict[str, list[int]] = {}
    for identity in STRANGERS:
        for photo in manifest[identity][:3]:
            (face,) = recognize_over_http(live_server_url, issued.plaintext, photo)["faces"]
            assert face["decision"] == "unknown" and face["unknown_face"], face
            kept.setdefault(identity, []).append(face["unknown_face"])
    clusters = {identity: min(ids) for identity, ids in kept.items()}

    log_in(browser, live_server_url)
    browser.get(f"{live_server_url}/admin/organizations/organization/{acme.pk}/change/")
    assert "Unknown faces (6)" in browser.find_element(By.ID, "unknown-link").text
    browser.find_element(By.ID, "unknown-link").click()
    wait_for(browser, lambda d: len(cluster_cards(d)) == 2, "the page does not show two clusters")
    # Two cards of three, each with its three crops loaded from the staff-only thumbnail view.
    wait_for(browser, lambda d: all(all(cards["crops"]) for cards in cluster_cards(d).values()), "crops not loaded")
    cards = cluster_cards(browser)
    assert sorted(cards) == sorted(clusters.values())
    assert all(card["size"] == 3 and len(card["crops"]) == 3 for card in cards.values()), cards
    assert "First seen" in browser.find_element(By.CSS_SELECTOR, ".fp-cluster .fp-seen").text
    for size in ("desktop", "phone"):
        resize(browser, size)
        no_horizontal_overflow(browser)
        screenshot(browser, f"admin-unknown-faces-{size}.png")
    resize(browser, "desktop")

    # Name the first stranger's cluster: their fourth photo is then recognised by name.
    first, second = STRANGERS
    browser.find_element(By.ID, f"name-{clusters[first]}").send_keys(STRANGERS[first])
    browser.find_element(By.CSS_SELECTOR, f'[data-cluster="{clusters[first]}"] .fp-name-form button').click()
    wait_for(browser, lambda d: f"3 faces added to {STRANGERS[first]} (new person)" in d.find_element(
        By.CSS_SELECTOR, ".messagelist").text, "naming did not report success")
    assert sorted(cluster_cards(browser)) == [clusters[second]]
    (fourth,) = recognize_over_http(live_server_url, issued.plaintext, manifest[first][3])["faces"]
    assert fourth["decision"] == "match" and fourth["match"]["name"] == STRANGERS[first], fourth
    assert fourth["unknown_face"] is None

    # The enrolled person is now offered for the remaining card; dismiss it instead.
    options = browser.find_element(By.ID, f"person-{clusters[second]}").text
    assert STRANGERS[first] in options
    browser.find_element(By.CSS_SELECTOR, f'[data-cluster="{clusters[second]}"] .fp-dismiss').click()
    wait_for(browser, lambda d: d.find_elements(By.ID, "unknown-empty"), "the dismissed cluster is still shown")
    assert "Dismissed: 3 faces deleted." in browser.find_element(By.CSS_SELECTOR, ".messagelist").text
    assert not UnknownFace.objects.filter(organization=acme).exists()
    assert list(Person.objects.filter(organization=acme).values_list("name", flat=True)) == [STRANGERS[first]]


def webcam_names(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#overlay .face-box .face-label .name')].map(n => n.textContent).sort();")


def strip(driver) -> list[dict]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#unknowns .unknown-cluster')].map(c => ({"
        " cluster: +c.dataset.cluster, size: +c.dataset.size,"
        " crop: c.querySelector('.crop').complete ? c.querySelector('.crop').naturalWidth : 0}));")


def connect(driver) -> None:
    driver.find_element(By.ID, "connect-button").click()
    wait_for(driver, lambda d: "Live" in d.find_element(By.ID, "connection-state").text, "never connected")


def test_webcam_strip_shows_a_stranger_and_naming_them_there_names_the_next_frames(
        live_server_url, browser, keeping):
    acme, issued = keeping
    name = CAMERA_STRANGER[1]
    # Not keeping: the strip stays hidden while the stranger is in view.
    acme.keep_unknown_faces = False
    acme.save()
    browser.get(f"{live_server_url}/demo/")
    browser.find_element(By.ID, "organization").send_keys("acme")
    browser.find_element(By.ID, "user").send_keys("alice")
    browser.find_element(By.ID, "api-key-name").send_keys("webcam")
    browser.find_element(By.ID, "api-key").send_keys(issued.plaintext)
    connect(browser)
    browser.find_element(By.ID, "camera-button").click()
    wait_for(browser, lambda d: webcam_names(d) == ["Unknown"], "the stranger is not drawn as unknown")
    time.sleep(1.0)
    assert not browser.find_element(By.ID, "unknowns-card").is_displayed()
    assert not UnknownFace.objects.exists()

    # Keeping on, and connecting again: the stranger turns up in the strip.
    acme.keep_unknown_faces = True
    acme.save()
    browser.find_element(By.ID, "disconnect-button").click()
    connect(browser)
    wait_for(browser, lambda d: d.find_element(By.ID, "unknowns-card").is_displayed(), "no Who's this? strip")
    wait_for(browser, lambda d: len(strip(d)) == 1 and strip(d)[0]["crop"] > 0,
             "the stranger's face does not appear in the strip", 30)
    assert webcam_names(browser) == ["Unknown"]
    (card,) = strip(browser)
    assert UnknownFace.objects.filter(organization=acme).order_by("id").first().pk == card["cluster"]
    for size, picture in (("phone", "webcam-whos-this-phone.png"), ("desktop", "webcam-whos-this.png")):
        resize(browser, size)
        no_horizontal_overflow(browser)
        browser.execute_script("document.getElementById('unknowns-card').scrollIntoView({block: 'end'});")
        screenshot(browser, picture)

    # One click from a name: the next frames name them, and the strip empties.
    field = browser.find_element(By.CSS_SELECTOR, "#unknowns .unknown-cluster input")
    field.send_keys(name)
    browser.find_element(By.CSS_SELECTOR, "#unknowns .unknown-cluster button").click()
    wait_for(browser, lambda d: webcam_names(d) == [name], "the named stranger is not named on the next frames", 30)
    # The named card leaves the strip. (A frame decided unknown just before the naming may still be
    # kept just after it, as a card of its own: the newest frames are what name them.)
    wait_for(browser, lambda d: card["cluster"] not in [c["cluster"] for c in strip(d)],
             "the named cluster stays in the strip", 15)
    wait_for(browser, lambda d: name in d.find_element(By.ID, "people").text, "the people list misses them", 15)
    person = Person.objects.get(organization=acme, name=name)
    assert person.faces.count() >= 1
    for _ in range(4):  # named frame after frame
        time.sleep(0.4)
        assert webcam_names(browser) == [name]
