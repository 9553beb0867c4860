"""Headless Chromium through Selenium and chromium-driver: load a page from disk and list what went wrong.

Debian's ``chromium`` and ``chromium-driver`` packages provide the browser and the driver; the ``selenium``
package (PyPI) talks to the driver. Both binaries are given explicitly, so Selenium never tries to
download a browser or a driver. The flags are those a sandboxed, GPU-less CI container needs.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

#: Set to 1 (as CI does) to make a missing browser a test failure instead of a skip.
REQUIRE_ENV = "LLMSIM_REQUIRE_BROWSER"
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000")
#: Reports every <img> as [complete, naturalWidth, naturalHeight, first characters of src].
IMAGES_JS = ("return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight, "
             "i.src.slice(0, 40)]);")


def browser_required() -> bool:
    """Whether the environment demands that the browser tests run (CI)."""
    return os.environ.get(REQUIRE_ENV, "") == "1"


def missing_parts() -> list[str]:
    """What is lacking for the browser tests: the chromium / chromedriver binaries, the selenium package."""
    missing = [name for name in ("chromium", "chromedriver") if chromium_path(name) is None]
    if importlib.util.find_spec("selenium") is None:
        missing.append("selenium (pip)")
    return missing


def chromium_path(name: str) -> str | None:
    """The path of ``chromium`` (or chromium-browser) or ``chromedriver``, if installed."""
    if name == "chromium":
        return shutil.which("chromium") or shutil.which("chromium-browser")
    return shutil.which(name) or next((p for p in ("/usr/lib/chromium/chromedriver",) if Path(p).is_file()), None)


def start_driver(user_data_dir: Path):
    """A headless Chromium WebDriver with browser and network logging on, using a fresh profile folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_path("chromium")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=chromium_path("chromedriver")), options=options)
    driver.set_page_load_timeout(120)
    return driver


@dataclass(frozen=True)
class PageCheck:
    """What a page load showed: console entries at SEVERE level, images that did not render, and the URLs
    the page itself requested (anything but file: and data: would be a network fetch)."""

    title: str
    severe: list[str]
    images: list[list]
    broken_images: list[list]
    requested: list[str]


def check_page(driver, path: Path) -> PageCheck:
    """Load ``path`` as a file:// URL and collect console errors, image states and requested URLs."""
    driver.get_log("browser"), driver.get_log("performance")  # drop whatever the start page logged
    url = path.resolve().as_uri()
    driver.get(url)
    images = driver.execute_script(IMAGES_JS)
    severe = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    return PageCheck(driver.title, severe, images, [i for i in images if not (i[0] and i[1] > 0)],
                     _requests_of(driver.get_log("performance"), url))


def _requests_of(entries: list[dict], document_url: str) -> list[str]:
    """The URLs of Network.requestWillBeSent events issued by the document at ``document_url``."""
    urls = []
    for entry in entries:
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent" and params.get("documentURL") == document_url:
            urls.append(params["request"]["url"])
    return urls
