"""The staff console and the webcam page in real headless Chromium, at a desktop (1400x900) and a
phone (390x844) window: the admin "try it" page, the "copy this now" key page, the people list with
crops, and the phone-first webcam layout. Each saves screenshots into docs/screenshots/.

daphne serves the app in a subprocess against this test's database (the fixtures of
test_webcam.py); the real model recognises real photos, a few per test.
"""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from selenium.webdriver.common.by import By

from apikeys.models import APIKey
from apikeys.services import api_key_issue
from faces.engine import get_engine
from faces.services import person_register
from organizations.services import organization_create
from recognition.services import recognize
from tests.conftest import REPO_ROOT
from tests.e2e.conftest import (
    camera_frame,
    fake_camera_browser,
    skip_module_without_browser,
    wait_for,
    write_y4m,
)

skip_module_without_browser()

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = REPO_ROOT / "docs" / "screenshots"
SIZES = {"desktop": (1400, 900), "phone": (390, 844)}
PASSWORD = "staff-pass-123"


@pytest.fixture
def group_photo(faces_dir) -> Path:
    return faces_dir / "_group" / "family1_beach.jpg"


@pytest.fixture
def browser(tmp_path, group_photo):
    """Chromium whose fake camera shows a family of four (for labels over neighbouring faces)."""
    video = tmp_path / "camera.y4m"
    write_y4m(video, camera_frame(group_photo), frames=15)
    with fake_camera_browser(tmp_path, video, console_log="e2e-console-console.log", hide_scrollbars=True) as driver:
        yield driver


def resize(driver, size: str) -> None:
    """desktop: a 1400x900 window; phone: a 390x844 CSS-pixel screen, emulated as a mobile device
    (a common phone size), so the viewport itself is 390x844."""
    width, height = SIZES[size]
    if size == "phone":
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": True,
        })
        expected = (width, height)
    else:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        driver.set_window_size(width, height)
        expected = (width, None)

    def viewport_is(d):
        inner = d.execute_script("return [window.innerWidth, window.innerHeight]")
        return inner[0] == expected[0] and expected[1] in (None, inner[1])

    if driver.current_url.startswith("http"):  # a blank first page reports no size of its own
        wait_for(driver, viewport_is, f"viewport never {expected}", 10)


def screenshot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / name))


def no_horizontal_overflow(driver) -> None:
    widths = driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[1], f"page is {widths[0]} px wide in a {widths[1]} px window"


def rects(driver, selector: str) -> list[dict]:
    """Where the nodes are in the next painted frame: a layout change (a scrollbar appearing) is
    answered by the page's resize observer before paint, and a user only ever sees painted frames."""
    return driver.execute_async_script(
        "const [selector, done] = arguments;"
        "requestAnimationFrame(() => requestAnimationFrame(() => done("
        " [...document.querySelectorAll(selector)].map(n => {"
        "  const r = n.getBoundingClientRect();"
        "  return {x: r.x, y: r.y, w: r.width, h: r.height, text: n.textContent}; }))));",
        selector,
    )


def assert_no_overlap(boxes: list[dict]) -> None:
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            apart = (a["x"] + a["w"] <= b["x"] + 0.5 or b["x"] + b["w"] <= a["x"] + 0.5
                     or a["y"] + a["h"] <= b["y"] + 0.5 or b["y"] + b["h"] <= a["y"] + 0.5)
            assert apart, f"labels overlap: {a} and {b}"


def log_in(driver, base_url: str) -> None:
    get_user_model().objects.create_superuser("staff", password=PASSWORD)
    driver.get(f"{base_url}/admin/login/?next=/admin/")
    driver.find_element(By.ID, "id_username").send_keys("staff")
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for(driver, lambda d: "FacePortal" in d.find_element(By.ID, "site-name").text, "no admin index", 20)


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_admin_try_it_page_draws_boxes_and_names_and_registers(live_server_url, browser, manifest, faces_dir):
    acme = organization_create(slug="acme")
    person_register(organization=acme, name="Barack Obama", images=[b64(manifest["Barack_Obama"][0].path)])
    person_register(organization=acme, name="Joe Biden", images=[b64(manifest["Joe_Biden"][0].path)])
    log_in(browser, live_server_url)
    group = faces_dir / "_group" / "two_people.jpg"
    in_force = round(recognize(organization=acme, image={"base64": b64(group)}).threshold.similarity, 4)
    for size in SIZES:
        resize(browser, size)
        browser.get(f"{live_server_url}/admin/organizations/organization/{acme.pk}/try/")
        browser.find_element(By.ID, "try-file").send_keys(str(group))
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#try-overlay .try-box")) == 2,
                 "the two faces were not drawn")
        labels = rects(browser, "#try-overlay .try-label")
        names = sorted(label["text"].split(". ", 1)[1].rstrip("%0123456789.") for label in labels)
        assert names == ["Barack Obama", "Joe Biden"], labels
        assert all(label["text"].endswith("%") for label in labels)  # matches carry their similarity
        assert_no_overlap(labels)
        image = rects(browser, "#try-image")[0]
        for box in rects(browser, "#try-overlay .try-box"):
            assert image["x"] - 1 <= box["x"] and box["x"] + box["w"] <= image["x"] + image["w"] + 1
            assert image["y"] - 1 <= box["y"] and box["y"] + box["h"] <= image["y"] + image["h"] + 1
        # The organisation's false-match rate decided, at the threshold REST derives for this gallery.
        assert browser.find_element(By.ID, "try-threshold-source").text == "calibrated"
        assert browser.find_element(By.ID, "try-threshold-used").text == f"{in_force:.3f}"
        assert "false-match rate 0.1% with 2 people enrolled" in browser.find_element(By.ID, "try-decision").text
        candidates = browser.find_element(By.ID, "try-faces").text
        assert "Barack Obama" in candidates and "Joe Biden" in candidates and "0." in candidates
        no_horizontal_overflow(browser)
        screenshot(browser, f"admin-try-it-{size}.png")

    # Register from the same page: a new person, then the page names them.
    browser.find_element(By.ID, "try-file").send_keys(str(manifest["Tony_Blair"][0].path))
    wait_for(browser, lambda d: "Unknown" in d.find_element(By.ID, "try-overlay").text, "no unknown face drawn")
    assert "%" not in browser.find_element(By.ID, "try-overlay").text  # "Unknown" carries no percentage
    browser.find_element(By.ID, "try-name").send_keys("Tony Blair")
    browser.find_element(By.ID, "try-register-button").click()
    wait_for(browser, lambda d: "Registered Tony Blair" in d.find_element(By.ID, "try-register-result").text,
             "registering from the page failed")
    wait_for(browser, lambda d: "Tony Blair" in d.find_element(By.ID, "try-overlay").text,
             "the registered face is not named")


def test_key_issue_page_copies_the_key_and_reload_never_shows_it(live_server_url, browser):
    acme = organization_create(slug="acme")
    log_in(browser, live_server_url)
    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": live_server_url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
    })
    for size in SIZES:
        resize(browser, size)
        browser.get(f"{live_server_url}/admin/organizations/organization/{acme.pk}/change/")
        assert browser.find_element(By.ID, "organization-overview").is_displayed()
        screenshot(browser, f"admin-organization-{size}.png")
        browser.find_element(By.ID, "issue-key-link").click()
        browser.find_element(By.ID, "id_user").send_keys("alice")
        browser.find_element(By.ID, "id_name").send_keys(f"laptop-{size}")
        browser.find_element(By.CSS_SELECTOR, "input[name=_save]").click()
        wait_for(browser, lambda d: d.find_elements(By.ID, "issued-secret"), "no key page", 20)
        secret = browser.find_element(By.ID, "issued-secret").get_attribute("value")
        key = APIKey.objects.get(name=f"laptop-{size}")
        assert secret.startswith(f"fp_{key.prefix}_") and key.organization_id == acme.pk
        assert "will not be shown again" in browser.page_source
        assert secret in browser.find_element(By.ID, "issued-curl").get_attribute("value")
        browser.find_element(By.ID, "copy-secret").click()
        wait_for(browser, lambda d: "Copied" in d.find_element(By.ID, "copy-feedback").text, "no copy feedback", 10)
        clipboard = browser.execute_async_script(
            "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done('ERR ' + e));"
        )
        assert clipboard == secret
        no_horizontal_overflow(browser)
        screenshot(browser, f"admin-key-issued-{size}.png")
        browser.refresh()
        key_page = f"/admin/apikeys/apikey/{key.pk}/change/"
        wait_for(browser, lambda d, page=key_page: page in d.current_url, "reload went elsewhere", 20)
        assert secret not in browser.page_source
        assert secret.split("_", 2)[2] not in browser.page_source
        assert APIKey.objects.filter(organization=acme).count() == list(SIZES).index(size) + 1  # no second key


def test_admin_people_list_shows_crops_in_one_row(live_server_url, browser, manifest):
    acme = organization_create(slug="acme")
    obama_photos = [b64(photo.path) for photo in manifest["Barack_Obama"][:3]]
    person_register(organization=acme, name="Barack Obama", images=obama_photos)
    person_register(organization=acme, name="Joe Biden", images=[b64(manifest["Joe_Biden"][0].path)])
    log_in(browser, live_server_url)
    for size in SIZES:
        resize(browser, size)
        browser.get(f"{live_server_url}/admin/faces/person/")
        wait_for(browser, lambda d: d.execute_script(
            "return [...document.querySelectorAll('.fp-thumbs img')].every(i => i.complete && i.naturalWidth > 0)"
        ), "thumbnails did not load", 20)
        rows = browser.execute_script("""
            return [...document.querySelectorAll('#result_list tbody tr')].map(tr => ({
              name: tr.querySelector('th, td.field-name').textContent.trim(),
              height: tr.getBoundingClientRect().height,
              tops: [...tr.querySelectorAll('.fp-thumbs img')].map(i => Math.round(i.getBoundingClientRect().top)),
            }));""")
        by_name = {row["name"]: row for row in rows}
        assert len(by_name["Barack Obama"]["tops"]) == 3 and len(by_name["Joe Biden"]["tops"]) == 1
        for row in rows:
            assert len(set(row["tops"])) == 1, row  # one row of thumbnails, not a stack
            assert row["height"] < 70, row
        assert "People" in browser.find_element(By.ID, "content").text
        screenshot(browser, f"admin-people-{size}.png")
    obama = acme.people.get(name="Barack Obama")
    resize(browser, "desktop")
    browser.get(f"{live_server_url}/admin/faces/person/{obama.pk}/change/")
    assert len(browser.find_elements(By.CSS_SELECTOR, ".fp-face .fp-face-box")) == 3
    assert not browser.find_elements(By.CSS_SELECTOR, ".inline-group tr.empty-form")
    screenshot(browser, "admin-person-faces-desktop.png")


def test_landing_page_fits_a_phone_and_copies_snippets_for_the_visitors_organisation(live_server_url, browser):
    browser.execute_cdp_cmd("Browser.grantPermissions", {
        "origin": live_server_url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
    })
    for size in SIZES:
        resize(browser, size)
        browser.get(f"{live_server_url}/")
        no_horizontal_overflow(browser)
        screenshot(browser, f"landing-{size}.png")
        for link in ("/demo/", "/api/docs/", "/admin/"):
            assert browser.find_elements(By.CSS_SELECTOR, f'.cta a[href="{link}"]'), link
        organization = browser.find_element(By.ID, "snippet-org")
        organization.clear()
        organization.send_keys(f"team-{size}")
        snippet = browser.find_element(By.ID, "snippet-recognize").text
        assert f"{live_server_url}/recognize/team-{size}" in snippet
        browser.find_element(By.CSS_SELECTOR, 'button[data-copy="snippet-recognize"]').click()
        clipboard = browser.execute_async_script(
            "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done('ERR ' + e));"
        )
        assert clipboard == snippet
        screenshot(browser, f"landing-snippets-{size}.png")


def test_webcam_page_phone_first_layout_labels_and_people_crops(live_server_url, browser, manifest, group_photo):
    frame = camera_frame(group_photo)
    assert len(get_engine().faces_in(frame).faces) >= 3, "the fake camera should show several faces"
    acme = organization_create(slug="acme")
    issued = api_key_issue(organization=acme, user="alice", name="webcam")
    person_register(organization=acme, name="Dad", images=[b64(manifest["Azure_Family1_Dad"][0].path)])
    person_register(organization=acme, name="Mom", images=[b64(manifest["Azure_Family1_Mom"][0].path)])
    for size in ("phone", "desktop"):
        resize(browser, size)
        browser.get(f"{live_server_url}/demo/")
        connect = browser.find_element(By.ID, "connect-button").rect
        viewport = browser.execute_script("return {w: window.innerWidth, h: window.innerHeight, y: window.scrollY}")
        if size == "phone":
            assert (viewport["w"], viewport["h"]) == SIZES["phone"]
        assert viewport["y"] == 0 and connect["y"] + connect["height"] <= viewport["h"], (connect, viewport)
        no_horizontal_overflow(browser)
        if size == "phone":
            screenshot(browser, "webcam-phone-connect.png")
        # An error appears next to the field it concerns.
        browser.find_element(By.ID, "organization").send_keys("acme")
        browser.find_element(By.ID, "connect-button").click()
        assert "Type the user" in browser.find_element(By.ID, "user-error").text
        browser.find_element(By.ID, "user").send_keys("alice")
        browser.find_element(By.ID, "api-key-name").send_keys("webcam")
        browser.find_element(By.ID, "api-key").send_keys(issued.plaintext)
        browser.find_element(By.ID, "connect-button").click()
        wait_for(browser, lambda d: "Live" in d.find_element(By.ID, "connection-state").text, "never connected")
        browser.find_element(By.ID, "camera-button").click()
        wait_for(browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#overlay .face-box")) >= 3,
                 "the faces were not drawn")
        wait_for(browser, lambda d: {"Dad", "Mom"} <= set(
            n.text for n in d.find_elements(By.CSS_SELECTOR, "#overlay .face-label .name")), "Dad and Mom not named")
        labels = rects(browser, "#overlay .face-label")
        assert_no_overlap(labels)
        for label in labels:
            if label["text"].startswith("Unknown"):
                assert "%" not in label["text"]
        # The people list shows each person's face crop, fetched with the key.
        wait_for(browser, lambda d: d.execute_script(
            "const imgs = [...document.querySelectorAll('#people .avatar img')];"
            "return imgs.length === 2 && imgs.every(i => i.complete && i.naturalWidth > 0);"
        ), "the people list shows no face crops", 20)
        no_horizontal_overflow(browser)
        screenshot(browser, f"webcam-{size}.png")
        if size == "phone":
            browser.execute_script("document.querySelector('.people-card').scrollIntoView({block: 'end'})")
            screenshot(browser, "webcam-phone-people.png")
            browser.execute_script("window.scrollTo(0, 0)")
        browser.find_element(By.ID, "disconnect-button").click()
        browser.find_element(By.ID, "camera-button").click()

