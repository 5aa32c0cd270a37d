"""Render each example workflow in the real ComfyUI frontend and save its template-browser
thumbnail, ``workflows/<name>.jpg`` (ComfyUI serves custom-node template thumbnails as
``/api/workflow_templates/<pack>/<name>.jpg``).

    python tools/render_workflow_thumbnails.py http://127.0.0.1:8188 [NAME ...]

(with names: only those workflows; without: all of them).

The server must run this pack (it draws the emotion wheels); needs playwright and a
system Chromium at /usr/bin/chromium.
"""

import io
import json
import sys
import time
from pathlib import Path

from PIL import Image
from playwright.sync_api import sync_playwright

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8188"
NAMES = set(sys.argv[2:])
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox","--disable-gpu","--disable-quic","--no-first-run","--disable-background-networking","--disable-component-update","--disable-sync"])
    page = b.new_page(viewport={"width": 3000, "height": 1700})
    page.goto(URL, timeout=120000)
    page.wait_for_function("window.app && window.app.graph", timeout=120000)
    time.sleep(3)
    page.keyboard.press("Escape")
    page.evaluate("async () => { try { await window.app.extensionManager.setting.set('Comfy.Minimap.Visible', false); await window.app.extensionManager.setting.set('LiteGraph.Canvas.LowQualityRenderingZoomThreshold', 0.1) } catch (e) {} }")
    for path in sorted(p for p in WORKFLOWS.glob("*.json") if not NAMES or p.stem in NAMES):
        wf = json.loads(path.read_text())
        page.evaluate("wf => window.app.loadGraphData(wf)", wf)
        time.sleep(2)
        page.keyboard.press("Escape")
        page.evaluate("() => { const c = window.app.canvas; c.deselectAll && c.deselectAll(); }")
        page.mouse.click(1500, 1650)
        page.keyboard.press(".")
        time.sleep(2)
        png = page.screenshot(clip={"x": 60, "y": 90, "width": 2900, "height": 1560})
        image = Image.open(io.BytesIO(png)).convert("RGB")
        image.thumbnail((768, 432))
        out = path.with_suffix(".jpg")
        image.save(out, quality=82, optimize=True)
        print(out, image.size, out.stat().st_size)
    b.close()
