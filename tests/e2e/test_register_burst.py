"""The webcam page's "register me" in real headless Chromium: a burst of camera frames, the best
three kept. The fake camera plays a video that changes picture every few frames (five photos of
one person and a blurred one), as a person turning in front of a webcam would; one click must
enrol exactly three faces, mark the frames that were not kept with the server's reason, and the
page must then name the person."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from selenium.webdriver.common.by import By

from apikeys.services import api_key_issue
from faces.models import Face
from organizations.services import organization_create
from tests.e2e.conftest import camera_frame, fake_camera_browser, skip_module_without_browser, wait_for

skip_module_without_browser()

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

FPS = 10
FRAMES_PER_VIEW = 4  # 0.4 s a picture: the page's burst (8 frames, 0.3 s apart) sees each


def write_y4m_views(path: Path, views: list[np.ndarray]) -> None:
    """A YUV4MPEG2 file showing each picture for FRAMES_PER_VIEW frames (Chromium loops it)."""
    height, width = views[0].shape[:2]
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for view in views:
            i420 = cv2.cvtColor(view, cv2.COLOR_BGR2YUV_I420).tobytes()
            for _ in range(FRAMES_PER_VIEW):
                handle.write(b"FRAME\n")
                handle.write(i420)


@pytest.fixture
def burst_video(tmp_path, manifest) -> Path:
    views = [camera_frame(photo.path) for photo in manifest["George_W_Bush"][:5]]
    views.append(cv2.GaussianBlur(camera_frame(manifest["George_W_Bush"][5].path), (0, 0), 8))
    path = tmp_path / "burst.y4m"
    write_y4m_views(path, views)
    return path


@pytest.fixture
def browser(tmp_path, burst_video):
    with fake_camera_browser(tmp_path, burst_video, console_log="e2e-register-burst-console.log") as driver:
        yield driver


def face_label(driver) -> str | None:
    return driver.execute_script(
        "const n = document.querySelector('#overlay .face-box .face-label .name');"
        "return n ? n.textContent : null;"
    )


def test_one_register_me_enrols_the_best_three_frames_of_a_burst(live_server_url, browser):
    org = organization_create(slug="acme")
    key = api_key_issue(organization=org, user="alice", name="webcam")
    browser.get(f"{live_server_url}/demo/")
    browser.find_element(By.ID, "organization").send_keys("acme")
    browser.find_element(By.ID, "user").send_keys("alice")
    browser.find_element(By.ID, "api-key-name").send_keys("webcam")
    browser.find_element(By.ID, "api-key").send_keys(key.plaintext)
    browser.find_element(By.ID, "connect-button").click()
    wait_for(browser, lambda d: "Live" in d.find_element(By.ID, "connection-state").text, "never connected")
    browser.find_element(By.ID, "camera-button").click()
    wait_for(browser, lambda d: d.execute_script("return document.getElementById('video').videoWidth") > 0,
             "the camera never started")
    wait_for(browser, lambda d: face_label(d) == "Unknown", "no face box drawn for the camera's face")

    # The person is prompted to turn while the burst is taken.
    browser.execute_script("""
        window.prompts = [];
        new MutationObserver(() => window.prompts.push(document.getElementById('register-result').textContent))
          .observe(document.getElementById('register-result'), {childList: true, characterData: true, subtree: true});
    """)
    browser.find_element(By.ID, "register-name").send_keys("George W Bush")
    wait_for(browser, lambda d: d.find_element(By.ID, "register-button").is_enabled(), "register stays disabled")
    browser.find_element(By.ID, "register-button").click()
    wait_for(browser, lambda d: "Registered George W Bush" in d.find_element(By.ID, "register-result").text,
             "registration from the camera did not succeed")
    result = browser.find_element(By.ID, "register-result").text
    assert "3 faces kept from 8 frames" in result, result
    assert any("Turn your head slightly" in text for text in browser.execute_script("return window.prompts")), \
        browser.execute_script("return window.prompts")

    # Three faces enrolled from one click, each shown as the face it contributed.
    assert Face.objects.filter(organization=org, person__name="George W Bush").count() == 3
    captures = browser.execute_script("""
        return [...document.querySelectorAll('#captures img')].map(i => ({
          used: i.classList.contains('used'), rejected: i.classList.contains('rejected'),
          code: i.dataset.code || null, title: i.title, size: [i.naturalWidth, i.naturalHeight]}));
    """)
    assert len(captures) == 8, captures
    used = [c for c in captures if c["used"]]
    assert len(used) == 3 and all(c["size"] == [104, 104] for c in used), captures
    rejected = [c for c in captures if c["rejected"]]
    assert len(rejected) == 5, captures
    # Each frame not kept says why, in the server's words: outranked, a repeat, or blurred.
    assert {c["code"] for c in rejected} <= {"not_among_best", "duplicate_image", "face_too_blurred", "no_face"}
    assert "not_among_best" in {c["code"] for c in rejected}, captures
    assert all(c["title"] for c in rejected), captures

    wait_for(browser, lambda d: "George W Bush" in d.find_element(By.ID, "people").text,
             "the people list does not show the new person")
    wait_for(browser, lambda d: face_label(d) == "George W Bush", "the page never named the registered person")
