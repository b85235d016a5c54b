"""The webcam page in real headless Chromium against a real daphne (HTTP + WebSocket).

Chromium's fake camera plays a video made here from a real photo; the visitor connects with an
API key, registers the person from the camera, and the page must draw that name over the face,
in the right place at two window sizes; then deletes the person and sees them become unknown.
"""

from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By

from apikeys.services import api_key_issue
from faces.engine import get_engine
from organizations.services import organization_create
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import (
    ARTIFACTS,
    VIDEO_SIZE,
    camera_frame,
    fake_camera_browser,
    skip_module_without_browser,
    wait_for,
    write_y4m,
)

skip_module_without_browser()

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

@pytest.fixture
def browser(tmp_path, camera_video):
    with fake_camera_browser(tmp_path, camera_video, console_log="e2e-browser-console.log") as driver:
        yield driver


@pytest.fixture
def camera_photo(manifest) -> Path:
    return manifest["Barack_Obama"][3].path


@pytest.fixture
def camera_video(tmp_path, camera_photo) -> Path:
    path = tmp_path / "camera.y4m"
    write_y4m(path, camera_frame(camera_photo))
    return path


@pytest.fixture
def acme_key(transactional_db):
    return api_key_issue(organization=organization_create(slug="acme"), user="alice", name="webcam")


def face_label(driver) -> str | None:
    return driver.execute_script(
        "const n = document.querySelector('#overlay .face-box .face-label .name');"
        "return n ? n.textContent : null;"
    )


def box_geometry(driver) -> dict:
    """The drawn box and the video's displayed picture, in page pixels."""
    return driver.execute_script("""
        const video = document.getElementById('video');
        const overlay = document.getElementById('overlay').getBoundingClientRect();
        const box = document.querySelector('#overlay .face-box').getBoundingClientRect();
        return {overlay: {x: overlay.x, y: overlay.y, w: overlay.width, h: overlay.height},
                box: {x: box.x, y: box.y, w: box.width, h: box.height},
                video: {w: video.videoWidth, h: video.videoHeight},
                mirrored: document.getElementById('mirror').checked};
    """)


def assert_box_over_the_face(geometry: dict, expected: dict) -> None:
    overlay, box = geometry["overlay"], geometry["box"]
    video_w, video_h = geometry["video"]["w"], geometry["video"]["h"]
    assert (video_w, video_h) == VIDEO_SIZE
    # The overlay covers exactly the displayed picture (object-fit: contain keeps the aspect ratio).
    assert abs(overlay["w"] / overlay["h"] - video_w / video_h) < 0.02
    scale = overlay["w"] / video_w
    x = video_w - expected["x"] - expected["w"] if geometry["mirrored"] else expected["x"]
    expected_cx = overlay["x"] + (x + expected["w"] / 2) * scale
    expected_cy = overlay["y"] + (expected["y"] + expected["h"] / 2) * scale
    tolerance = 0.06 * overlay["w"]
    assert abs(box["x"] + box["w"] / 2 - expected_cx) < tolerance, (geometry, expected)
    assert abs(box["y"] + box["h"] / 2 - expected_cy) < tolerance, (geometry, expected)
    assert 0.7 < box["w"] / (expected["w"] * scale) < 1.4, (geometry, expected)


def test_register_from_camera_then_the_page_names_the_face(live_server_url, browser, acme_key, camera_photo):
    frame = camera_frame(camera_photo)
    detected = get_engine().faces_in(frame).faces
    assert len(detected) == 1, "the fake camera's picture should show one face"
    expected_box = detected[0].detection.box.as_dict()

    browser.get(f"{live_server_url}/demo/")
    assert "Live recognition" in browser.title

    browser.find_element(By.ID, "organization").send_keys("acme")
    browser.find_element(By.ID, "user").send_keys("alice")
    browser.find_element(By.ID, "api-key-name").send_keys("webcam")
    browser.find_element(By.ID, "api-key").send_keys(acme_key.plaintext)
    browser.find_element(By.ID, "connect-button").click()
    wait_for(browser, lambda d: "Live" in d.find_element(By.ID, "connection-state").text, "never connected")
    assert "fp_" not in browser.current_url  # the key never lands in the page's address

    browser.find_element(By.ID, "camera-button").click()
    wait_for(browser, lambda d: d.execute_script("return document.getElementById('video').videoWidth") > 0,
             "the camera never started")

    # Before registration the face is drawn, but as unknown.
    wait_for(browser, lambda d: face_label(d) == "Unknown", "no face box drawn for the camera's face")

    browser.find_element(By.ID, "register-name").send_keys("Barack Obama")
    wait_for(browser, lambda d: d.find_element(By.ID, "register-button").is_enabled(), "register stays disabled")
    browser.find_element(By.ID, "register-button").click()
    wait_for(browser, lambda d: "Registered Barack Obama" in d.find_element(By.ID, "register-result").text,
             "registration from the camera did not succeed")
    wait_for(browser, lambda d: "Barack Obama" in d.find_element(By.ID, "people").text,
             "the people list does not show the new person")
    # Each capture used is shown as the face it contributed (a square crop), not the whole frame.
    used = browser.execute_script(
        "return [...document.querySelectorAll('#captures img.used')].map(i => [i.naturalWidth, i.naturalHeight]);"
    )
    assert used and all(size == [104, 104] for size in used), used

    wait_for(browser, lambda d: face_label(d) == "Barack Obama", "the page never named the registered face")
    assert_box_over_the_face(box_geometry(browser), expected_box)
    similarity = browser.find_element(By.CSS_SELECTOR, "#overlay .face-box .similarity").text
    assert similarity.endswith("%")
    wait_for(browser, lambda d: d.find_element(By.ID, "stat-fps").text not in ("", "–"), "no live FPS shown")
    assert browser.find_element(By.ID, "stat-latency").text.isdigit()

    time.sleep(2.0)  # a representative picture: live statistics past the first frames
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / "webcam.png"))
    browser.save_screenshot(str(REPO_ROOT / "docs" / "screenshots" / "webcam.png"))  # docs/WEBSOCKET.md's picture

    # Another window size: the box follows the picture.
    browser.set_window_size(820, 1000)
    time.sleep(1.0)  # let a few more results arrive and the layout settle
    wait_for(browser, lambda d: face_label(d) == "Barack Obama", "name lost after resizing")
    assert_box_over_the_face(box_geometry(browser), expected_box)

    # Delete from the list (two clicks: arm, confirm): the face becomes unknown again.
    delete_button = browser.find_element(By.CSS_SELECTOR, "#people li .btn-danger")
    delete_button.click()
    delete_button.click()
    wait_for(browser, lambda d: "No one registered yet" in d.find_element(By.ID, "people").text,
             "the person was not deleted")
    wait_for(browser, lambda d: face_label(d) == "Unknown", "a deleted person is still named")


def test_wrong_key_shows_a_clear_message_and_does_not_retry(live_server_url, browser, acme_key):
    browser.get(f"{live_server_url}/demo/")
    browser.find_element(By.ID, "organization").send_keys("acme")
    browser.find_element(By.ID, "user").send_keys("alice")
    browser.find_element(By.ID, "api-key-name").send_keys("webcam")
    browser.find_element(By.ID, "api-key").send_keys(acme_key.plaintext[:-3] + "xyz")
    browser.find_element(By.ID, "connect-button").click()
    # Shown next to the key field, not under the video.
    wait_for(browser, lambda d: "API key was refused" in d.find_element(By.ID, "api-key-error").text,
             "no message for a bad key")
    assert browser.find_element(By.ID, "api-key").get_attribute("aria-invalid") == "true"
    assert browser.find_element(By.ID, "connection-state").text == "Disconnected"


def test_a_key_without_the_recognize_scope_is_explained_and_not_retried(live_server_url, browser, acme_key):
    org = acme_key.api_key.organization
    enrol_only = api_key_issue(organization=org, user="alice", name="enrolling", scopes=["enrol", "manage"])
    browser.get(f"{live_server_url}/demo/")
    browser.find_element(By.ID, "organization").send_keys("acme")
    browser.find_element(By.ID, "user").send_keys("alice")
    browser.find_element(By.ID, "api-key-name").send_keys("enrolling")
    browser.find_element(By.ID, "api-key").send_keys(enrol_only.plaintext)
    browser.find_element(By.ID, "connect-button").click()
    wait_for(browser, lambda d: "'recognize' scope" in d.find_element(By.ID, "api-key-error").text,
             "no message for a key without the recognize scope")
    assert browser.find_element(By.ID, "connection-state").text == "Disconnected"
    time.sleep(1.5)  # the first reconnect would come after 1 s: there is none
    assert browser.find_element(By.ID, "connection-state").text == "Disconnected"


def test_the_pages_scripts_are_served_as_javascript(live_server_url):
    """The webcam and try-it pages load ES modules, which a browser runs only when served with a
    JavaScript MIME type: each one as daphne and whitenoise serve it."""
    static = REPO_ROOT / "recognition" / "static"
    scripts = sorted(path.relative_to(static).as_posix() for path in static.glob("recognition/**/*.js"))
    assert {"recognition/webcam.js", "recognition/webcam/socket.js", "recognition/labels.js",
            "recognition/tryit.js"} <= set(scripts), scripts
    for script in scripts:
        with urllib.request.urlopen(f"{live_server_url}/static/{script}") as response:
            assert response.status == 200, script
            assert response.headers.get_content_type() == "text/javascript", (script, response.headers)
