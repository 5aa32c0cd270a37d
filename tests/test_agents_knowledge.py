"""The concept graph: its documented schema, coverage, slots, and no affective shortcuts."""

from __future__ import annotations

import copy
import json
import re
from collections import Counter

import pytest

from emotion_core.agents.fit import names_emotion
from emotion_core.agents.knowledge import (ASPECTS, FAMILIES, SCHEMA, SETTINGS, SLOT_VALUES, THING, _data_text,
                                           all_knowledge, knowledge, parse_graph, scene_lexicon)
from emotion_core.agents.personas import PERSONAS, select_personas
from emotion_core.agents.tokens import count_tokens
from emotion_core.errors import InvalidInputError, ModelFormatError
from emotion_core.taxonomy import EMOTIONS


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_each_graph_follows_the_schema_and_covers_every_kind_of_subject(emotion):
    raw = json.loads(_data_text(f"concepts_{emotion}.json"))
    assert raw["schema"] == SCHEMA
    for appraisal in raw["appraisals"]:
        assert set(appraisal) == {"aspect", "question", "concepts"} and appraisal["aspect"] in ASPECTS
        for concept in appraisal["concepts"]:
            assert set(concept) == {"concept", "elements"}
            for element in concept["elements"]:
                assert set(element) <= {"name", "family", "phrase", "detail", "slots"}
                assert set(element["slots"]) == {*SLOT_VALUES, "setting"}
    graph = knowledge(emotion)
    elements = graph.elements
    assert len(elements) >= 60 and len({e.key for e in elements}) == len(elements)
    assert {e.family for e in elements} == set(FAMILIES)
    # phrases for every kind of subject: indoors, outdoors, anywhere; about the subject itself; for a person
    wheres = Counter(e.slots.where for e in elements)
    assert wheres["any"] >= 20 and wheres["outdoor"] >= 2 and wheres["indoor"] + wheres["any"] >= 30
    assert sum(e.about_subject for e in elements) >= 8
    assert sum(e.slots.people == "subject" for e in elements) >= 4
    assert all(s in SETTINGS for e in elements for s in e.slots.setting)
    assert all(e.detail for e in elements if e.family == "scene" and not e.about_subject)


def test_phrases_show_the_emotion_without_naming_it_and_fit_clip():
    for graph in all_knowledge().values():
        for element in graph.elements:
            for text in element.texts():
                assert not names_emotion(text), text
                assert count_tokens(text.replace(THING, "old wooden fishing boat")) <= 24, text


OPEN_SKY = re.compile(r"\b(?:sky|skies|aurora|rainbow|horizon|clouds?|stars|sunset|sunrise)\b", re.IGNORECASE)
THROUGH_GLASS = re.compile(r"\b(?:window|glass|pane)\b", re.IGNORECASE)


def test_open_sky_elements_are_outdoor_unless_seen_through_a_window():
    """A sky phenomenon marked "any" would be offered to an indoor subject (aurora over a bowl of ramen)."""
    wrong = [(emotion, e.phrase) for emotion, graph in all_knowledge().items() for e in graph.elements
             if e.family in ("weather", "lighting", "scene") and e.slots.where == "any"
             and OPEN_SKY.search(e.phrase) and not THROUGH_GLASS.search(e.phrase)]
    assert wrong == []


def test_no_element_name_is_shared_between_emotions():
    seen: dict[str, str] = {}
    for emotion, graph in all_knowledge().items():
        for element in graph.elements:
            assert seen.setdefault(element.name, emotion) == emotion, element.name


def _good() -> dict:
    return json.loads(_data_text("concepts_awe.json"))


@pytest.mark.parametrize("change, message", [
    (lambda d: d.update(schema="v0"), "'schema' must be"),
    (lambda d: d.update(emotion="fear"), "must be 'awe'"),
    (lambda d: d.update(appraisals=[]), "no appraisals"),
    (lambda d: d["appraisals"][0].update(aspect="smell"), "unknown aspect 'smell'"),
    (lambda d: d["appraisals"][0]["concepts"][0].update(elements=[]), "has no elements"),
    (lambda d: d["appraisals"][0]["concepts"][0]["elements"][0].update(family="smell"), "unknown family"),
    (lambda d: d["appraisals"][0]["concepts"][0]["elements"][0].update(phrase=""), "'phrase' must be"),
    (lambda d: d["appraisals"][0]["concepts"][0]["elements"][0]["slots"].update(where="space"), "slot 'where'"),
    (lambda d: d["appraisals"][0]["concepts"][0]["elements"][0]["slots"].update(setting=["moon"]), "slot 'setting'"),
    (lambda d: d["appraisals"][0]["concepts"][0]["elements"][0]["slots"].update(mood="x"), "unknown slots"),
    (lambda d: d["appraisals"][0]["concepts"][0]["elements"].append(d["appraisals"][0]["concepts"][0]["elements"][0]),
     "element names must be unique"),
])
def test_loader_reports_bad_graphs_clearly(change, message):
    data = copy.deepcopy(_good())
    change(data)
    with pytest.raises(ModelFormatError, match=re.escape(message) if "'" not in message else message):
        parse_graph("awe", data)


def test_scene_lexicon_values_are_the_slots_values():
    lexicon = scene_lexicon()
    assert set(lexicon["where"]) == {"indoor", "outdoor"} and set(lexicon["setting"]) == set(SETTINGS)
    assert set(lexicon["time"]) <= set(SLOT_VALUES["time"]) and set(lexicon["sky"]) <= set(SLOT_VALUES["sky"])


def test_personas_lean_on_real_families_and_count_is_checked():
    for persona in PERSONAS:
        assert set(persona.family_weights) <= set(FAMILIES), persona.key
        assert all(persona.aspect_weight(a) > 0 for a in ASPECTS)
    assert [p.key for p in select_personas(5)] == ["painter", "photographer", "child", "psychologist", "film_director"]
    for bad in (0, len(PERSONAS) + 1, "3"):
        with pytest.raises(InvalidInputError):
            select_personas(bad)
