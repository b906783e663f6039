"""The page in a real browser (Playwright driving Debian's Chromium, never a downloaded one).

Runs an example in Classify and in Segment, moves β in the LMD explorer and checks that the
total loss follows, and saves a full-page screenshot of each tab: to a temporary folder,
or to tests/screenshots/ (the README's pictures) when FRUITSEG_UPDATE_SCREENSHOTS=1.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pytest

from fruitseg.labels import FRUITS360_KINDS

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = (
    Path(__file__).resolve().parent / "screenshots"
    if os.environ.get("FRUITSEG_UPDATE_SCREENSHOTS") == "1"
    else Path(tempfile.gettempdir()) / "fruitseg-screenshots"
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 60_000  # a model run on a busy CPU, plus the first page load

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's Chromium is missing: apt-get install -y chromium chromium-driver (.ci/run does)"
)


@pytest.fixture(scope="module")
def browser_page(app_url):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            page.js_errors = []
            page.on("pageerror", lambda error: page.js_errors.append(str(error)))
            page.goto(app_url)
            page.wait_for_selector("#classify-image")
            yield page
        finally:
            browser.close()


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def click_example(page, tab: str, stem: str) -> None:
    examples = page.locator(f"#{tab}-examples button.gallery-item")
    examples.filter(has=page.locator(f'img[src*="{stem}"]')).first.click()


def columns_cut_off(page, selector: str) -> list[str]:
    """The headers of the table in ``selector`` that end past its right edge (seen only by scrolling)."""
    return page.eval_on_selector(
        selector,
        """root => {
            const right = root.getBoundingClientRect().right;
            return [...root.querySelectorAll('th')]
                .filter(th => th.getBoundingClientRect().right > right + 1)
                .map(th => th.innerText.trim());
        }""",
    )


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.wait_for_timeout(300)  # let the last transition settle
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_classify_example(browser_page, models):
    from playwright.sync_api import expect

    page = browser_page
    open_tab(page, "Classify")
    click_example(page, "classify", "banana")  # examples run on click
    expect(page.locator("#classify-status")).to_contain_text(re.compile(r"\d+ ms on"))
    label = page.locator("#classify-label").inner_text()
    assert any(kind in label for kind in FRUITS360_KINDS), label  # the headline is a kind
    assert "%" in label  # the confidences are shown
    cnn = page.locator("#classify-cnn").inner_text()
    assert any(name in cnn for name in models.classifier.class_names), cnn  # the seed CNN beside it
    expect(page.locator("#classify-table")).to_contain_text("Fruits-360 CNN says")
    assert columns_cut_off(page, "#classify-table") == []  # every column in view, none behind a sideways scroll
    screenshot(page, "classify")
    assert page.js_errors == []


def test_segment_example(browser_page):
    from playwright.sync_api import expect

    page = browser_page
    open_tab(page, "Segment")
    click_example(page, "segment", "strawberry")
    expect(page.locator("#segment-overlay img")).to_be_visible()
    expect(page.locator("#segment-summary")).to_contain_text(re.compile(r"\d+ ms on"))
    expect(page.locator("#segment-mask")).to_contain_text("strawberry_mask")
    expect(page.locator("#segment-table")).to_contain_text("confidence")
    assert columns_cut_off(page, "#segment-table") == []
    screenshot(page, "segment")
    assert page.js_errors == []


def test_lmd_explorer_is_live(browser_page):
    from playwright.sync_api import expect

    page = browser_page
    open_tab(page, "LMD explorer")
    total = page.locator("#lmd-total input")
    expect(total).not_to_have_value("")
    before = total.input_value()

    beta = page.locator("#lmd-beta input[type=number]")
    beta.fill("3")
    beta.press("Enter")
    expect(total).not_to_have_value(before)

    ce = float(page.locator("#lmd-ce input").input_value())
    lmd = float(page.locator("#lmd-lmd input").input_value())
    assert float(total.input_value()) == pytest.approx(ce + 3 * lmd, abs=1e-4)
    assert page.locator("#lmd-dist-chart svg").count() == 1 and page.locator("#lmd-grad-chart svg").count() == 1
    screenshot(page, "lmd")
    assert page.js_errors == []
