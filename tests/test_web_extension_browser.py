"""The web extension in the real ComfyUI frontend, in a headless Chromium (COMFYUI_PATH,
python ``playwright`` and a system ``chromium``; no browser download).

The session's ComfyUI server (the comfyui_server fixture, tests/conftest.py) serves the frontend with this pack
in ``custom_nodes``. The page loads the extension, an Emotion Direction node gets the
wheel, clicks and drags on it set the plain widgets, a real run draws the source image's
emotions, and the critic loop's chart draws a ``ui`` output captured from a real run.
Screenshots go to the test's tmp dir; the wheel's is copied to web/docs/images/ for the README.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import urllib.request
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from helpers.comfyui_server import REPO_ROOT
from emotion_core.testing.assets import TEST_FILES

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.slow,
    pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set"),
]

sync_api = pytest.importorskip("playwright.sync_api", reason="python playwright is not installed")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("no chromium executable (Debian package `chromium`)", allow_module_level=True)

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXTENSION = "EmotionDirector.Widgets"
EXTENSION_URL = "/extensions/emotion_director/"
DOCS_SCREENSHOT = REPO_ROOT / "web" / "docs" / "images" / "emotion_wheel.png"
UPDATE_SCREENSHOTS = "EMOTION_DIRECTOR_UPDATE_SCREENSHOTS"  # set to 1 to refresh the README's screenshot
LOOP_UI = REPO_ROOT / "web" / "tests" / "fixtures" / "critic_loop_ui.json"
SOURCE_IMAGE = "emotion_wheel_source.png"
LOAD_TIMEOUT_MS = 120_000
RUN_TIMEOUT_MS = 300_000


@pytest.fixture(scope="module")
def browser(comfyui_server, tmp_path_factory):
    """One page on the server's frontend for the module, with every console message, page
    error and failed request recorded in ``events``."""
    events: list[dict] = []
    # A first visit opens the template browser over the canvas; this user has seen it.
    request = urllib.request.Request(comfyui_server.url("/settings"), method="POST",
                                     data=json.dumps({"Comfy.TutorialCompleted": True}).encode())
    urllib.request.urlopen(request, timeout=30).close()
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium_profile")), executable_path=CHROMIUM, headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            page.on("console", lambda m: events.append(
                {"kind": m.type, "text": m.text, "where": (m.location or {}).get("url", "")}))
            page.on("pageerror", lambda e: events.append({"kind": "pageerror", "text": str(e), "where": e.stack or ""}))
            page.on("response", lambda r: r.status >= 400 and events.append(
                {"kind": "http", "text": f"{r.status} {r.url}", "where": r.url}))
            page.goto(comfyui_server.url("/"), wait_until="load")
            page.wait_for_function(
                f"() => window.app?.graph && window.app.extensions?.some(e => e.name === '{EXTENSION}')",
                timeout=LOAD_TIMEOUT_MS)
            yield page, events
        finally:
            context.close()


def extension_errors(events: list[dict]) -> list[dict]:
    """Errors the extension caused: console errors and page errors that name it or come from
    its files, and failed requests for its files or the locale. (The bare frontend logs a few
    of its own on a server without user files or internet; those are not ours.)"""
    ours = []
    for event in events:
        blob = f"{event['text']} {event['where']}".lower()
        mentions = "emotion" in blob or EXTENSION_URL in blob
        if event["kind"] in ("error", "pageerror") and mentions:
            ours.append(event)
        elif event["kind"] == "http" and (EXTENSION_URL in event["where"] or event["where"].endswith("/i18n")):
            ours.append(event)
    return ours


ADD_NODE = """([type, x, y]) => {
  const node = window.LiteGraph.createNode(type);
  node.pos = [x, y];
  window.app.graph.add(node);
  window.app.canvas.ds.offset = [0, 0];
  window.app.canvas.ds.scale = 1;
  window.app.graph.setDirtyCanvas(true, true);
  return node.id;
}"""
WIDGET_VALUES = "(id) => window.app.graph.getNodeById(id).widgets.filter(w => w.serialize !== false).map(w => w.value)"
CANVAS_PIXELS = "([id, name]) => window.app.graph.getNodeById(id).widgets.find(w => w.name === name).element.toDataURL()"
ELEMENT_BOX = """([id, name]) => {
  const r = window.app.graph.getNodeById(id).widgets.find(w => w.name === name).element.getBoundingClientRect();
  return {x: r.x, y: r.y, width: r.width, height: r.height};
}"""
NODE_BOX = """(id) => {
  const node = window.app.graph.getNodeById(id), canvas = window.app.canvas;
  const r = canvas.canvas.getBoundingClientRect(), s = canvas.ds.scale, o = canvas.ds.offset;
  const title = window.LiteGraph.NODE_TITLE_HEIGHT;
  return {x: r.left + (node.pos[0] + o[0]) * s - 6, y: r.top + (node.pos[1] - title + o[1]) * s - 6,
          width: node.size[0] * s + 12, height: (node.size[1] + title) * s + 12};
}"""
RECORD_EXECUTED = """(id) => {
  window.emotionTestExecuted = window.emotionTestExecuted || {};
  const node = window.app.graph.getNodeById(id);
  const original = node.onExecuted;
  node.onExecuted = function (message) {
    window.emotionTestExecuted[id] = message;
    return original?.apply(this, arguments);
  };
}"""


def _redraw(page) -> None:
    page.evaluate("() => window.app.graph.setDirtyCanvas(true, true)")
    page.wait_for_timeout(300)


def _fresh_graph(page) -> None:
    page.evaluate("() => window.app.graph.clear()")


def _click_wheel(page, box: dict, emotion_angle_deg: float, distance: float, shift: bool = False) -> None:
    """Click at ``distance`` px from the wheel's centre (the middle of its element) at an angle
    counter-clockwise from 3 o'clock."""
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    angle = math.radians(emotion_angle_deg)
    if shift:
        page.keyboard.down("Shift")
    page.mouse.click(cx + distance * math.cos(angle), cy - distance * math.sin(angle))
    if shift:
        page.keyboard.up("Shift")


def test_extension_is_served_and_registered(browser, comfyui_server):
    page, events = browser
    served = comfyui_server.get_json("/extensions")
    assert f"{EXTENSION_URL}js/emotion_director.js" in served
    assert page.evaluate("() => window.LiteGraph.registered_node_types['EmotionDirection'].title") == "Emotion Direction"
    assert not extension_errors(events), extension_errors(events)


def test_plain_widgets_stay_the_source_of_truth(browser):
    """The wheel and panels are display widgets: not in the workflow's widgets_values, not in the prompt."""
    page, events = browser
    _fresh_graph(page)
    node_id = page.evaluate(ADD_NODE, ["EmotionDirection", 380, 130])
    names = page.evaluate("(id) => window.app.graph.getNodeById(id).widgets.map(w => [w.name, w.serialize !== false])",
                          node_id)
    assert names == [["target_emotion", True], ["strength", True], ["blend", True],
                     ["emotion_wheel", False], ["emotion_source", False]]
    saved = page.evaluate("(id) => window.app.graph.getNodeById(id).serialize().widgets_values", node_id)
    assert saved == ["awe", 1, ""]
    prompt = page.evaluate("async () => (await window.app.graphToPrompt()).output")
    assert prompt[str(node_id)]["inputs"] == {"target_emotion": "awe", "strength": 1, "blend": ""}
    assert not extension_errors(events), extension_errors(events)


def test_wheel_clicks_and_drags_set_the_widgets(browser):
    page, events = browser
    _fresh_graph(page)
    node_id = page.evaluate(ADD_NODE, ["EmotionDirection", 380, 130])
    _redraw(page)
    box = page.evaluate(ELEMENT_BOX, [node_id, "emotion_wheel"])
    sadness, awe = 202.5, 112.5  # sector centres (see web/js/emotion_wheel_math.js)

    _click_wheel(page, box, sadness, 25)
    emotion, near, blend = page.evaluate(WIDGET_VALUES, node_id)
    assert emotion == "sadness" and 0 < near < 2 and blend == ""
    _click_wheel(page, box, sadness, 50)
    emotion, far, _ = page.evaluate(WIDGET_VALUES, node_id)
    assert emotion == "sadness" and abs(far - 2 * near) <= 0.1, (near, far)  # strength grows with distance
    _click_wheel(page, box, awe, 88)
    assert page.evaluate(WIDGET_VALUES, node_id) == ["awe", 2, ""]  # past the rim (radius < 88 px): the maximum

    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx - 30, cy + 5)
    page.mouse.down()
    page.mouse.move(cx + 10, cy - 10, steps=4)
    page.mouse.move(cx + 40, cy - 16, steps=4)  # ends in excitement's sector
    page.mouse.up()
    emotion, dragged, _ = page.evaluate(WIDGET_VALUES, node_id)
    assert emotion == "excitement" and 0 < dragged < 2

    _click_wheel(page, box, sadness, 88, shift=True)  # shift: add to the blend, weight by distance
    assert page.evaluate(WIDGET_VALUES, node_id) == ["excitement", dragged, "sadness:1"]
    _click_wheel(page, box, awe, 25)  # a plain click picks one emotion again: the blend is cleared
    assert page.evaluate(WIDGET_VALUES, node_id)[::2] == ["awe", ""]

    page.wait_for_timeout(300)
    values = page.evaluate(WIDGET_VALUES, node_id)
    _click_wheel(page, box, sadness, 50)
    assert page.evaluate(WIDGET_VALUES, node_id) != values
    page.keyboard.press("Control+z")  # a wheel click is one undo step of ComfyUI's change tracker
    page.wait_for_timeout(500)
    assert page.evaluate(WIDGET_VALUES, node_id) == values

    before = page.evaluate(CANVAS_PIXELS, [node_id, "emotion_wheel"])
    page.evaluate("(id) => { window.app.graph.getNodeById(id).widgets[1].value = 1.5; }", node_id)
    _redraw(page)
    assert page.evaluate(CANVAS_PIXELS, [node_id, "emotion_wheel"]) != before, "the wheel follows the widget"
    assert not extension_errors(events), extension_errors(events)


def test_direction_shows_the_source_emotions_after_a_real_run(browser, comfyui_server, tmp_path):
    page, events = browser
    ramp = np.linspace(0, 255, 64, dtype=np.uint8)
    pixels = np.stack([np.tile(ramp, (64, 1)), np.tile(ramp[:, None], (1, 64)), np.full((64, 64), 96, np.uint8)], -1)
    Image.fromarray(pixels, "RGB").save(comfyui_server.input_dir / SOURCE_IMAGE)
    critic_file = str(PurePosixPath(TEST_FILES["critic_emoeditor"]).relative_to(
        PurePosixPath(TEST_FILES["critic_emoeditor"]).parts[0]))

    _fresh_graph(page)
    image_id = page.evaluate(ADD_NODE, ["LoadImage", 20, 130])
    critic_id = page.evaluate(ADD_NODE, ["EmotionCriticLoader", 20, 520])
    node_id = page.evaluate(ADD_NODE, ["EmotionDirection", 380, 130])
    show_id = page.evaluate(ADD_NODE, ["PreviewAny", 760, 130])
    page.evaluate("""([image, critic, direction, show, imageName, criticName]) => {
      const g = window.app.graph, n = (id) => g.getNodeById(id);
      n(image).widgets.find(w => w.name === 'image').value = imageName;
      n(critic).widgets.find(w => w.name === 'critic_name').value = criticName;
      const dir = n(direction);
      dir.widgets.find(w => w.name === 'target_emotion').value = 'contentment';
      dir.widgets.find(w => w.name === 'strength').value = 1.25;
      n(image).connect(0, dir, dir.findInputSlot('source_image'));
      n(critic).connect(0, dir, dir.findInputSlot('critic'));
      dir.connect(1, n(show), 0);
    }""", [image_id, critic_id, node_id, show_id, SOURCE_IMAGE, critic_file])
    page.evaluate(RECORD_EXECUTED, node_id)
    _redraw(page)
    before = page.evaluate(CANVAS_PIXELS, [node_id, "emotion_source"])

    page.evaluate("() => window.app.queuePrompt(0, 1)")
    page.wait_for_function(f"() => window.emotionTestExecuted?.[{node_id}]", timeout=RUN_TIMEOUT_MS)
    message = page.evaluate(f"() => window.emotionTestExecuted[{node_id}]")
    report = message["emotion_direction"][0]
    assert report["target"] == "contentment" and report["strength"] == 1.25
    assert len(report["source"]) == 8 and abs(sum(report["source"].values()) - 1) < 1e-4
    _redraw(page)
    assert page.evaluate(CANVAS_PIXELS, [node_id, "emotion_source"]) != before, "bars drawn from the ui output"

    shot = tmp_path / "emotion_wheel.png"
    page.screenshot(path=str(shot), clip=page.evaluate(NODE_BOX, node_id))
    with Image.open(shot) as image:
        assert image.width > 250 and image.height > 400
    if os.environ.get(UPDATE_SCREENSHOTS):  # tests never write into the repository unless asked
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    assert not extension_errors(events), extension_errors(events)


def test_critic_loop_draws_its_scores(browser, tmp_path):
    """A ``ui`` output captured from a real critic-loop run (a real run costs ~30 s on CPU)."""
    page, events = browser
    _fresh_graph(page)
    node_id = page.evaluate(ADD_NODE, ["EmotionCriticLoop", 380, 130])
    page.evaluate("""(id) => {  // the node is tall: scroll its bottom (the chart) into view
      const node = window.app.graph.getNodeById(id);
      window.app.canvas.ds.offset = [0, 800 - node.pos[1] - node.size[1]];
    }""", node_id)
    _redraw(page)
    before = page.evaluate(CANVAS_PIXELS, [node_id, "emotion_loop_chart"])
    for broken in ({}, {"emotion_loop": "x"}, {"emotion_loop": [None]}):  # drawn as a hint, never an exception
        page.evaluate("([id, m]) => window.app.graph.getNodeById(id).onExecuted(m)", [node_id, broken])
    _redraw(page)
    assert page.evaluate(CANVAS_PIXELS, [node_id, "emotion_loop_chart"]) == before

    message = json.loads(LOOP_UI.read_text(encoding="utf-8"))
    page.evaluate("([id, m]) => window.app.graph.getNodeById(id).onExecuted(m)", [node_id, message])
    _redraw(page)
    assert page.evaluate(CANVAS_PIXELS, [node_id, "emotion_loop_chart"]) != before
    page.screenshot(path=str(tmp_path / "emotion_critic_loop_chart.png"),
                    clip=page.evaluate(ELEMENT_BOX, [node_id, "emotion_loop_chart"]))
    assert not extension_errors(events), extension_errors(events)
