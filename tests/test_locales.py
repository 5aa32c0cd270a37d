"""``locales/en/nodeDefs.json`` matches the node schemas (names, descriptions, tooltips), and
ComfyUI serves it through ``/i18n``. Regenerate with ``python tools/node_locales.py``."""

from __future__ import annotations

import json
import os

import pytest

from node_locales import LOCALE_FILE, i18n_literal, node_defs, render


@pytest.fixture(scope="module")
def expected(pack):
    import asyncio

    from emotion_director_pack.nodes import EmotionDirectorExtension

    return node_defs(asyncio.run(EmotionDirectorExtension().get_node_list()))


def test_locale_file_matches_the_schemas(expected):
    assert LOCALE_FILE.is_file(), f"{LOCALE_FILE} is missing: run `python tools/node_locales.py`"
    actual = json.loads(LOCALE_FILE.read_text(encoding="utf-8"))
    stale = sorted(set(actual) ^ set(expected)) + sorted(k for k in expected if k in actual and actual[k] != expected[k])
    assert not stale, f"locales/en/nodeDefs.json is out of date for {stale}: run `python tools/node_locales.py`"
    assert LOCALE_FILE.read_text(encoding="utf-8") == render(expected), "formatting drifted: regenerate the file"


def test_every_input_and_output_has_a_name_and_tooltip(expected):
    for node_id, entry in expected.items():
        assert entry["display_name"] and entry["description"], node_id
        for name, inp in entry.get("inputs", {}).items():
            assert inp["name"] and inp["tooltip"], f"{node_id}.{name}"
        for index, out in entry["outputs"].items():
            assert out["name"] and out["tooltip"], f"{node_id} output {index}"


def test_entries_follow_the_frontend_keys(expected):
    """The frontend reads outputs by index ("0", "1", ...) and inputs by input name."""
    direction = expected["EmotionDirection"]
    assert direction["display_name"] == "Emotion Direction"
    assert list(direction["inputs"]) == ["target_emotion", "strength", "blend", "source_image", "critic"]
    assert direction["outputs"]["0"]["name"] == "direction" and direction["outputs"]["1"]["name"] == "report"


def test_vue_i18n_special_characters_are_literals():
    assert i18n_literal("a {b} c@d e|f") == "a {'{'}b{'}'} c{'@'}d e{'|'}f"
    assert i18n_literal("awe:0.7, contentment:0.3 (0-1)") == "awe:0.7, contentment:0.3 (0-1)"


@pytest.mark.comfyui
@pytest.mark.skipif(not os.environ.get("COMFYUI_PATH"), reason="COMFYUI_PATH is not set")
def test_comfyui_serves_the_locale(comfyui_server):
    served = comfyui_server.get_json("/i18n")["en"]["nodeDefs"]
    ours = json.loads(LOCALE_FILE.read_text(encoding="utf-8"))
    for node_id, entry in ours.items():
        assert served[node_id] == entry, node_id
