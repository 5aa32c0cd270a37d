"""The concept knowledge base: coverage, shape, and no affective shortcuts."""

from __future__ import annotations

import json
import re

import pytest

from emotion_core.agents.knowledge import FAMILIES, _parse, all_knowledge, knowledge
from emotion_core.agents.personas import PERSONAS, select_personas
from emotion_core.agents.tokens import count_tokens
from emotion_core.errors import InvalidInputError, ModelFormatError
from emotion_core.taxonomy import EMOTIONS


@pytest.mark.parametrize("emotion", EMOTIONS)
def test_each_emotion_has_40_concepts_over_all_families(emotion):
    concepts = knowledge(emotion).concepts
    assert len(concepts) >= 40
    for family in FAMILIES:
        assert sum(c.family == family for c in concepts) >= 4, family
    assert len({c.key for c in concepts}) == len(concepts)
    assert knowledge(emotion).description


def test_phrases_show_the_emotion_without_naming_it():
    names = re.compile(r"\b(" + "|".join(EMOTIONS) + r"|evok\w*)\b", re.IGNORECASE)
    for k in all_knowledge().values():
        for concept in k.concepts:
            for _, phrase in concept.forms:
                assert not names.search(phrase), phrase
                assert count_tokens(phrase) <= 20, phrase


def test_no_concept_name_is_shared_between_emotions():
    seen: dict[str, str] = {}
    for emotion, k in all_knowledge().items():
        for concept in k.concepts:
            assert seen.setdefault(concept.name, emotion) == emotion, concept.name


def test_loader_reports_bad_files_clearly():
    with pytest.raises(ModelFormatError, match="unknown family"):
        _parse("awe", {"emotion": "awe", "concepts": [{"family": "smell", "concept": "x", "phrase": "y"}]})
    with pytest.raises(ModelFormatError, match="needs 'concept'"):
        _parse("awe", {"emotion": "awe", "concepts": [{"family": "scene", "concept": "x", "setting": "y"}]})
    with pytest.raises(ModelFormatError, match="must be 'awe'"):
        _parse("awe", json.loads('{"emotion": "fear", "concepts": []}'))


def test_personas_lean_on_real_families_and_count_is_checked():
    for persona in PERSONAS:
        assert set(persona.family_weights) <= set(FAMILIES), persona.key
    assert [p.key for p in select_personas(5)] == ["painter", "photographer", "child", "psychologist", "film_director"]
    for bad in (0, len(PERSONAS) + 1, "3"):
        with pytest.raises(InvalidInputError):
            select_personas(bad)
