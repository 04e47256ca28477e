"""Drive the app in a real browser: headless Chromium (Debian's) through Playwright.

Used by tests/test_app.py, and by hand for the README screenshot:

    python app.py &   # then
    python tests/browser.py http://127.0.0.1:7860 examples/astronaut_photo.jpg docs/app_screenshot.png Upscale "Real photo"
    python tests/browser.py http://127.0.0.1:7860 examples/astronaut.png shot.png Benchmark
"""

from __future__ import annotations

import shutil
import sys

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_CANDIDATES) if p), None)


def run_in_browser(url: str, image_path: str, screenshot_path: str, mode: str = "Upscale",
                   kind: str = "Clean downscale", timeout_ms: int = 120_000) -> tuple[list[dict], str]:
    """Upload ``image_path``, pick the input ``kind`` and ``mode``, press Run, wait until
    the first slider shows two loaded images, save a screenshot. Returns the first
    slider's images as loaded (natural size and source) and the page's text."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.locator("input[type=file]").first.set_input_files(image_path)
        page.get_by_label(kind, exact=True).check()
        page.get_by_label(mode, exact=True).check()
        page.get_by_role("button", name="Run").click()
        page.wait_for_function(
            """() => {
                const sliders = document.querySelectorAll('.slider-wrap, .image-slider, [data-testid="image-slider"]');
                const imgs = sliders.length ? sliders[0].querySelectorAll('img') : [];
                return imgs.length >= 2 && [...imgs].every(i => i.complete && i.naturalWidth > 0);
            }""",
            timeout=timeout_ms,
        )
        sizes = page.evaluate(
            """() => {
                const sliders = document.querySelectorAll('.slider-wrap, .image-slider, [data-testid="image-slider"]');
                return [...sliders[0].querySelectorAll('img')].map(i => ({w: i.naturalWidth, h: i.naturalHeight, src: i.src}));
            }"""
        )
        text = page.inner_text("body")
        page.mouse.move(0, 0)  # no hover or focus styling in the screenshot
        page.locator("body").click(position={"x": 1, "y": 1})
        page.screenshot(path=screenshot_path, full_page=True)
        browser.close()
    return sizes, text


if __name__ == "__main__":
    print(run_in_browser(sys.argv[1], sys.argv[2], sys.argv[3], *(sys.argv[4:6]))[0])
