"""The Agent Prompt Rewriter node, loaded the way ComfyUI loads the pack."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

DEFAULTS = dict(agents=5, creativity=0.5, seed=0, backend="builtin", base_url="http://127.0.0.1:11434/v1",
                model="", timeout=30.0, token_budget=77)


@pytest.fixture
def node(pack, monkeypatch):
    """The node class; its copy of ``emotion_core`` shares the test process's encoder instead of loading another."""
    from emotion_core.agents import rewrite_flow
    from emotion_director_pack.nodes.agent_rewriter import AgentPromptRewriter

    from emotion_core.agents.sentence_encoder import get_encoder

    monkeypatch.setattr(rewrite_flow, "get_encoder", get_encoder)
    return AgentPromptRewriter


def test_schema_follows_the_contract(node):
    schema = node.define_schema()
    assert (schema.node_id, schema.display_name) == ("AgentPromptRewriter", "Agent Prompt Rewriter")
    assert schema.category.startswith("Emotion Director/") and schema.description
    assert all(i.tooltip for i in schema.inputs)
    assert {i.id for i in schema.inputs} >= {"prompt", "emotion", "agents", "creativity", "seed", "backend",
                                             "base_url", "model", "emotion_direction"}
    assert not any("key" in i.id for i in schema.inputs)  # secrets never go into widgets
    direction = next(i for i in schema.inputs if i.id == "emotion_direction")
    assert direction.optional and direction.io_type == "EMOTION_DIRECTION"
    assert [o.io_type for o in schema.outputs] == ["STRING", "STRING", "STRING"]
    defaults = {i.id: i.default for i in schema.inputs if i.id in DEFAULTS}
    assert defaults == DEFAULTS


def transcript_data(transcript: str) -> dict:
    from emotion_director_pack.nodes.agent_rewriter import TRANSCRIPT_JSON_MARK

    return json.loads(transcript.split(TRANSCRIPT_JSON_MARK, 1)[1])


def test_execute_rewrites_with_builtin_agents_and_shows_the_chain(node):
    out = node.execute(prompt="a lighthouse on a cliff", emotion="awe", **DEFAULTS)
    rewritten, negative, transcript = out.args
    assert rewritten.startswith("a lighthouse on a cliff, ") and negative
    data = transcript_data(transcript)
    assert data["emotion"] == "awe"
    readable = transcript.split("\n\n", 1)[0].splitlines()
    assert readable[0] == "a lighthouse on a cliff -> awe"
    for agent in data["chain"]:
        assert f"  {agent['agent']} (builtin)" in readable
        assert f"    appraisal: {agent['appraisal']['note']}" in readable
        assert sum(line.startswith("      votes for ") for line in readable) >= len(data["chain"])
    assert out.ui["text"][0] == rewritten
    again = node.execute(prompt="a lighthouse on a cliff", emotion="awe", **DEFAULTS)
    assert again.args == out.args  # deterministic by seed


def test_emotion_direction_overrides_the_widget(node):
    from emotion_core.direction import make_direction

    direction = make_direction({"fear": 0.7, "sadness": 0.3})
    out = node.execute(prompt="a dog in a park", emotion="amusement", emotion_direction=direction, **DEFAULTS)
    assert transcript_data(out.args[2])["emotion"] == "fear"


def test_bad_input_is_a_clear_error(node):
    from emotion_core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="empty"):
        node.execute(prompt="  ", emotion="awe", **DEFAULTS)
    with pytest.raises(InvalidInputError, match="emotion_direction: expected a EMOTION_DIRECTION"):
        node.execute(prompt="a dog", emotion="awe", emotion_direction=SimpleNamespace(target={}), **DEFAULTS)


def test_unreachable_llm_falls_back_with_a_visible_warning(node):
    settings = {**DEFAULTS, "backend": "openai-compatible", "base_url": "http://127.0.0.1:9/v1", "model": "m",
                "timeout": 2.0}
    out = node.execute(prompt="a dog in a park", emotion="awe", **settings)
    assert out.args[0].startswith("a dog in a park, ")
    assert any(line.startswith("warning: agent") for line in out.ui["text"])
    assert transcript_data(out.args[2])["warnings"]
