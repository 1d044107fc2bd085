"""The browser tests' shared setup: Debian's Chromium driven by Playwright (the `browser`
fixture lives in the root conftest.py), a logged-in page that records problems, key presses
and screenshots. Screenshots go to SCREENSHOT_DIR (CI prints it)."""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.conf import settings
from django.db import connections
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", settings.DATA_DIR / "screenshots"))

# Each browser test module's pytestmark.
BROWSER_TEST_MARKS = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("CI", "").lower() not in ("true", "1"),
        reason="Chromium is not installed (apt-get install chromium); CI requires it",
    ),
]


def launched_browser() -> Iterator[Browser]:
    """What the `browser` fixture yields (it needs live_server)."""
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
    # around it are still plain synchronous ones.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        # While Playwright's loop runs, Django keeps this thread's connections apart (asgiref
        # treats the thread as async): close the ones the test opened, or they outlive the
        # test and keep PostgreSQL from dropping the test database.
        connections.close_all()
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def open_page(browser, live_server, user, *, width=1280, height=800):
    """A logged-in page that records dialogs, CSP violations and console errors."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.problems = []
    page.on("dialog", lambda d: (page.problems.append(f"dialog {d.message}"), d.dismiss()))
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation',"
        " e => console.error('CSP violation: ' + e.violatedDirective));"
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def keys(page, *pressed):
    for key in pressed:
        page.keyboard.press(key)
    return len(pressed)


def shot(page, name):
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)


def accessibility_problems(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it stands ("rule: target"
    each): a page passes with none. axe runs through Playwright's evaluate, which the CSP
    does not govern, so the page keeps its real policy."""
    results = Axe().run(page).response
    return [
        f"{violation['id']} ({violation['impact']}): {node['target']}"
        for violation in results["violations"]
        if violation["impact"] in ("serious", "critical")
        for node in violation["nodes"]
    ]
