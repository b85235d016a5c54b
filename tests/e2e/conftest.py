"""Shared by the browser tests: daphne serving the app against the test's database, the fake
camera's video, and waiting in the browser."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.db import connection
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from faces.engine.config import deepface_home
from tests.conftest import REPO_ROOT, database_url
from tests.ship.live_server import daphne

ARTIFACTS = REPO_ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")
VIDEO_SIZE = (640, 480)


def skip_module_without_browser() -> None:
    """A skip with its reason, not an import error: the rest of the suite still runs. `make test`
    installs both first (make system-deps), so CI always runs the browser tests."""
    if shutil.which(CHROMIUM) is None or shutil.which(CHROMEDRIVER) is None:
        pytest.skip(f"the browser tests need {CHROMIUM} and {CHROMEDRIVER} (make system-deps installs them)",
                    allow_module_level=True)

WAIT = 90  # seconds; the server loads the model on its first frames


def camera_frame(photo: Path) -> np.ndarray:
    """The photo cropped to 4:3 around its centre and scaled to the fake camera's size."""
    image = cv2.imread(str(photo))
    height, width = image.shape[:2]
    target_ratio = VIDEO_SIZE[0] / VIDEO_SIZE[1]
    if width / height > target_ratio:
        new_width = int(height * target_ratio)
        x0 = (width - new_width) // 2
        image = image[:, x0:x0 + new_width]
    else:
        new_height = int(width / target_ratio)
        y0 = (height - new_height) // 2
        image = image[y0:y0 + new_height]
    return cv2.resize(image, VIDEO_SIZE, interpolation=cv2.INTER_AREA)


def write_y4m(path: Path, frame_bgr: np.ndarray, *, frames: int = 30, fps: int = 15) -> None:
    """A raw YUV4MPEG2 (4:2:0) file, the format Chromium's fake capture device reads."""
    height, width = frame_bgr.shape[:2]
    i420 = cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    with open(path, "wb") as handle:
        handle.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            handle.write(b"FRAME\n")
            handle.write(i420)


def test_database_url() -> str:
    if connection.settings_dict["ENGINE"] != "django.db.backends.postgresql":
        raise RuntimeError("The browser test shares its database with a daphne process: "
                           "set DATABASE_URL to PostgreSQL.")
    return database_url(connection.settings_dict)


test_database_url.__test__ = False  # a helper, not a test


@contextmanager
def fake_camera_browser(tmp_path: Path, video: Path, *, console_log: str,
                        hide_scrollbars: bool = False) -> Iterator[webdriver.Chrome]:
    """Headless Chromium whose camera plays `video` (a .y4m); the pages' console goes to
    test-artifacts/<console_log> when the browser closes."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,900",
    ]
    if hide_scrollbars:
        flags.append("--hide-scrollbars")
    for flag in flags:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        try:
            ARTIFACTS.mkdir(exist_ok=True)
            (ARTIFACTS / console_log).write_text(
                "\n".join(f"{entry['level']} {entry['message']}" for entry in driver.get_log("browser")))
        finally:
            driver.quit()


@pytest.fixture
def server_env() -> dict[str, str]:
    """Settings for the daphne process beyond the test's own; a module overrides it to change one."""
    return {}


@pytest.fixture
def live_server_url(transactional_db, tmp_path, server_env):
    """daphne in a subprocess, serving the app against this test's database."""
    ARTIFACTS.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": test_database_url(),
        "FACEPORTAL_VAR_DIR": str(tmp_path / "var"),
        "DEEPFACE_HOME": str(deepface_home()),
        "FACEPORTAL_ENGINE_WORKERS": "1",
        "ALLOWED_HOSTS": "localhost,127.0.0.1",
        "PYTHONUNBUFFERED": "1",
        **server_env,
    })
    with daphne(env=env, log_path=ARTIFACTS / "e2e-daphne.log") as server:
        server.wait_ready(path="/healthz", timeout=WAIT)
        # localhost is a secure context, so the page may use the camera over plain http.
        yield f"http://localhost:{server.port}"


def wait_for(driver, condition, message: str, timeout: float = WAIT):
    # A page that navigates meanwhile (a login redirect) turns a found element stale: look again.
    return WebDriverWait(driver, timeout, poll_frequency=0.2,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
                         ).until(lambda d: condition(d), message)
