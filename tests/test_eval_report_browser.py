"""``report.html`` of a real ``eval score`` run, opened in headless Chromium (python ``playwright``
driving the system ``chromium``, no browser download; skipped without them): the tables, the
plots and the thumbnails are present and every picture decodes; a screenshot is taken."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.eval_data import write_emotion_tree

from emotion_core.cli import main

sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("no chromium executable (Debian package `chromium`)", allow_module_level=True)

pytestmark = pytest.mark.usefixtures("one_torch_thread")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def test_report_renders_in_chromium(eval_critics, tmp_path, capsys):
    data = write_emotion_tree(tmp_path / "data", ("awe", "fear"), 2, broken=True)
    run = tmp_path / "run"
    assert main(["eval", "score", str(data), "--critic", str(eval_critics["critic_emoedit"]), "--critic",
                 str(eval_critics["critic_emoeditor"]), "--out", str(run), "--workers", "0", "--bootstrap", "100",
                 "--no-progress"]) == 0
    capsys.readouterr()
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url}"))
            page.goto((run / "report.html").as_uri(), wait_until="load")
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            tables = page.eval_on_selector_all("table.metrics", "ts => ts.map(t => t.rows.length)")
            headers = page.eval_on_selector_all("table.metrics th", "hs => hs.map(h => h.textContent)")
            images = page.eval_on_selector_all(
                "img", "is => is.map(i => ({cls: i.className, ok: i.complete && i.naturalWidth > 0, "
                "src: i.src.slice(0, 22)}))")
            headings = page.eval_on_selector_all("h2", "hs => hs.map(h => h.textContent)")
            skipped = page.inner_text("ul.skipped")
        finally:
            browser.close()
    assert not errors, errors
    assert tables == [4, 4], "per critic: header, overall, awe, fear"
    assert "Emo-A" in headers and "emo score" in headers
    plots = [i for i in images if i["cls"] == "plot"]
    thumbs = [i for i in images if i["cls"] == "thumb"]
    assert len(plots) == 4 and len(thumbs) == 4 and all(i["ok"] for i in images), images
    assert all(i["src"].startswith("data:image/") for i in images), "self-contained: data URIs only"
    assert "Critic test_emoedit_probe" in headings and "Critic test_emoeditor_predictor" in headings
    assert "awe/broken.jpg" in skipped
    assert (tmp_path / "report.png").stat().st_size > 10_000
