"""The report of a tiny run, opened in a real browser (headless Chromium driven by Playwright, Debian's chromium, no
browser download): every image decoded, the summary table visible with a link per verdict that lands on its
evidence, and nothing logged as an error. Skipped, with the reason, where Chromium or Playwright is missing."""
import shutil
from pathlib import Path

import pytest

from benchmarks import report, run, timing
from benchmarks.report.summary import QUESTIONS, SUMMARY_TABLE_ID

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e .[test])")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium; "
                                                         ".ci/run installs it)")
# Root in a container: no sandbox; no GPU, no network, no first-run chores.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-extensions", "--no-first-run"]


@pytest.fixture(scope="module")
def page_of_report(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(timing, "SGEMM_SIZE", 128)
        assert run.main(["--task", "parabola", "--backend", "both", "--mode", "eager", "--steps", "12",
                         "--num-seeds", "2", "--out", str(out)]) == 0  # the report is built at the end, as users get it
    return out / report.REPORT_HTML


def test_the_report_renders_in_chromium(page_of_report):
    errors = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(Path(page_of_report).resolve().as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "images => images.map(i => [i.complete, i.naturalWidth, i.naturalHeight, i.alt])")
            table = page.locator(f"#{SUMMARY_TABLE_ID}")
            assert table.is_visible()
            headers = table.locator("th").all_inner_texts()
            links = table.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
            targets = [page.locator(f"[id='{href[1:]}']").count() for href in links]
            page.screenshot(path=str(Path(page_of_report).with_suffix(".png")))
        finally:
            browser.close()
    assert len(images) >= 8 and all(done and w > 0 and h > 0 for done, w, h, _ in images), images
    assert headers == ["task", *QUESTIONS]
    assert len(links) == len(QUESTIONS) and targets == [1] * len(links), (links, targets)
    assert errors == []
