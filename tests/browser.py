"""Drive the app in a real browser: headless Chromium (Debian's) through Playwright.

Used by tests/test_app_client.py, and by hand for the README screenshot:

    python app.py &   # then
    python tests/browser.py http://127.0.0.1:7860 examples/astronaut_photo.jpg docs/app_screenshot.png Upscale "Real photo"
    python tests/browser.py http://127.0.0.1:7860 examples/astronaut.png shot.png Benchmark
"""

from __future__ import annotations

import contextlib
import shutil
import sys

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
#: How long a run may take in a test (tiny models) or by hand (the bundled weights).
TIMEOUT_MS = 120_000


def chromium_path() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_CANDIDATES) if p), None)


class AppPage:
    """The app's page, by what a user sees: controls by their labels, the slider by its label."""

    def __init__(self, page):
        self.page = page

    def upload(self, path: str) -> None:
        self.page.locator("input[type=file]").first.set_input_files(path)

    def check(self, label: str) -> None:
        """Pick a radio choice (input kind, mode) by its text."""
        self.page.get_by_label(label, exact=True).check()

    def click_example(self, row: int) -> None:
        self.page.locator(f'[data-testid="dataset-cell-{row}-0"]').click()

    def wait_for_text(self, text: str, shown: bool = True) -> None:
        self.page.get_by_text(text, exact=True).wait_for(state="visible" if shown else "detached")

    def checked(self, label: str) -> bool:
        return self.page.get_by_label(label, exact=True).is_checked()

    def run(self) -> None:
        self.page.get_by_role("button", name="Run").click()

    def slider_label(self) -> str:
        """The slider's label: which method is on which side (the first line of its text)."""
        return self.page.locator("#slider").inner_text().strip().splitlines()[0]

    def wait_for_slider(self, label: str, timeout_ms: int = TIMEOUT_MS) -> None:
        """Until the slider's label is ``label`` and both its images are loaded."""
        self.page.wait_for_function(
            """label => {
                const slider = document.querySelector('#slider');
                const imgs = slider ? [...slider.querySelectorAll('img')] : [];
                return slider.innerText.trim().split('\\n')[0] === label && imgs.length >= 2
                    && imgs.every(i => i.complete && i.naturalWidth > 0);
            }""", arg=label, timeout=timeout_ms)

    def slider_images(self) -> list[dict]:
        """The slider's images as loaded: natural size and source."""
        return self.page.evaluate(
            """() => [...document.querySelector('#slider').querySelectorAll('img')]
                     .map(i => ({w: i.naturalWidth, h: i.naturalHeight, src: i.src}))""")

    def _open(self, dropdown: str):
        """Open a dropdown's list (from elsewhere: a click on a focused dropdown does not
        reopen it); returns the list."""
        self.page.locator("body").click(position={"x": 1, "y": 1})
        field = self.page.get_by_label(dropdown)
        field.click()
        listbox = self.page.locator(f"#{field.get_attribute('aria-controls')}")
        listbox.wait_for()
        return listbox

    def options(self, dropdown: str) -> list[str]:
        """What a dropdown offers."""
        texts = self._open(dropdown).get_by_role("option").all_inner_texts()
        self.page.keyboard.press("Escape")
        return [text.replace("✓", "").strip() for text in texts]

    def pick(self, dropdown: str, option: str) -> None:
        self._open(dropdown).get_by_role("option", name=option, exact=True).click()

    def set_number(self, label: str, value: float) -> None:
        """Type a slider's value into its number box (then leave it, which applies it)."""
        box = self.page.get_by_label(f"number input for {label}")
        box.fill(str(value))
        box.press("Enter")

    def wait_until_shown(self, label: str, shown: bool = True) -> None:
        """Until a slider is shown (or hidden)."""
        self.page.get_by_label(f"number input for {label}").wait_for(state="visible" if shown else "hidden")

    def text(self, selector: str = "body") -> str:
        return self.page.locator(selector).inner_text()

    def screenshot(self, path: str) -> None:
        self.page.mouse.move(0, 0)  # no hover or focus styling in the screenshot
        self.page.locator("body").click(position={"x": 1, "y": 1})
        self.page.screenshot(path=path, full_page=True)


@contextlib.contextmanager
def open_app(url: str, width: int = 1400, height: int = 1000):
    """An AppPage on ``url`` in a fresh headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(url)
            yield AppPage(page)
        finally:
            browser.close()


def screenshot_app(url: str, image_path: str, screenshot_path: str, mode: str = "Upscale",
                   kind: str = "Clean downscale", right: str = "HAT") -> None:
    """Upload, pick the kind and mode, run, wait for bicubic vs ``right``, save a screenshot."""
    with open_app(url) as app:
        app.upload(image_path)
        app.check(kind)
        app.check(mode)
        app.run()
        app.wait_for_slider(f"left: Bicubic | right: {right}")
        app.page.wait_for_function("() => document.querySelector('#status').innerText.startsWith('Done')")
        app.screenshot(screenshot_path)


if __name__ == "__main__":
    screenshot_app(*sys.argv[1:6])
