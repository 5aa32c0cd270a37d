"""Property-based tests (hypothesis) for every parser of outside input: emotion names, blends,
direction vectors and strengths, UI workflow files, preference dataset rows, agent JSON.

Each property: arbitrary input gives either a correct result or the module's own clear
error type, never another exception. Example counts are fixed and derandomised so CI runs
the same inputs every time (``EXAMPLES`` lists them for the README figure).
"""

from __future__ import annotations

import asyncio
import copy
import json
import math
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emotion_core.agents.backends.llm_protocol import AgentAnswerError, parse_answer
from emotion_core.direction import STRENGTH_RANGE, make_direction, parse_blend, validate_distribution
from emotion_core.errors import InvalidInputError
from emotion_core.taxonomy import EMOTIONS, parse_emotion

EXAMPLES = {"emotion": 400, "blend": 400, "weights": 300, "strength": 300, "distribution": 300, "workflow": 150,
            "dataset": 80, "agent_text": 400, "agent_json": 300}
FAST = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                     HealthCheck.too_slow])

WHITESPACE = st.text(alphabet=" \t\n\r\u00a0\u2003", max_size=3)
JSON_LEAF = st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False,
                                                                               allow_infinity=False) | st.text(max_size=20)
JSON = st.recursive(JSON_LEAF, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                          max_size=4), max_leaves=12)


def _random_case(name: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flip else c for c, flip in zip(name, flips + [False] * len(name)))


# Emotion names


@settings(max_examples=EXAMPLES["emotion"], **FAST)
@given(st.sampled_from(EMOTIONS), st.lists(st.booleans(), max_size=12), WHITESPACE, WHITESPACE)
def test_emotion_names_any_case_and_padding(name, flips, before, after):
    assert parse_emotion(before + _random_case(name, flips) + after) == name


@settings(max_examples=EXAMPLES["emotion"], **FAST)
@given(st.one_of(st.text(max_size=30), JSON))
def test_anything_else_is_a_clear_error_listing_the_eight(value):
    if isinstance(value, str) and value.strip().lower() in EMOTIONS:
        assert parse_emotion(value) == value.strip().lower()
        return
    with pytest.raises(InvalidInputError) as info:
        parse_emotion(value)
    assert all(e in str(info.value) for e in EMOTIONS)


# Blends, weights, strengths, distributions


PART = st.tuples(st.sampled_from(EMOTIONS) | st.text(max_size=8), st.lists(st.booleans(), max_size=12),
                 st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True).map(repr),
                           st.floats(0, 10).map(lambda v: f"{v:.3g}"), st.text(max_size=6)))


def _blend_text(parts, separators) -> str:
    out = []
    for (name, flips, weight), sep in zip(parts, separators + [","] * len(parts)):
        out.append(_random_case(name, flips) + ("" if weight is None else f":{weight}") + sep)
    return " ".join(out)


def _check_weights(weights: dict) -> None:
    assert weights and set(weights) <= set(EMOTIONS)
    assert all(math.isfinite(w) and w > 0 for w in weights.values())
    assert math.isclose(sum(weights.values()), 1.0, rel_tol=1e-9)


@settings(max_examples=EXAMPLES["blend"], **FAST)
@given(st.lists(PART, min_size=0, max_size=5), st.lists(st.sampled_from([",", ", ", ",,", ""]), max_size=5))
def test_blend_parsing(parts, separators):
    text = _blend_text(parts, separators)
    try:
        weights = parse_blend(text)
    except InvalidInputError:
        return
    _check_weights(weights)


@settings(max_examples=EXAMPLES["weights"], **FAST)
@given(st.dictionaries(st.sampled_from(EMOTIONS), st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 10**30),
                       max_size=8),
       st.floats(allow_nan=True, allow_infinity=True))
def test_direction_from_weights_and_strength(weights, strength):
    lo, hi = STRENGTH_RANGE
    try:
        direction = make_direction(weights, strength)
    except InvalidInputError:
        strength_ok = math.isfinite(strength) and lo <= strength <= hi
        weights_ok = all(math.isfinite(float(w)) and w >= 0 for w in weights.values()) and any(
            w > 0 for w in weights.values())
        assert not (strength_ok and weights_ok), "a valid direction was refused"
        return
    assert lo <= direction.strength <= hi
    _check_weights(direction.target)


@settings(max_examples=EXAMPLES["strength"], **FAST)
@given(st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 10), st.sampled_from(EMOTIONS))
def test_strength_range_is_enforced(strength, emotion):
    lo, hi = STRENGTH_RANGE
    if math.isfinite(strength) and lo <= strength <= hi:
        assert make_direction(emotion, strength).strength == float(strength)
    else:
        with pytest.raises(InvalidInputError, match="strength"):
            make_direction(emotion, strength)


@settings(max_examples=EXAMPLES["distribution"], **FAST)
@given(st.one_of(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=10),
                 st.lists(st.floats(0, 1), min_size=8, max_size=8).map(lambda v: [x / (sum(v) or 1) for x in v])))
def test_distributions(values):
    try:
        result = validate_distribution(values)
    except InvalidInputError:
        return
    assert len(result) == 8 and all(math.isfinite(v) and v >= 0 for v in result)
    assert math.isclose(sum(result), 1.0, rel_tol=1e-9)
    direction = make_direction("awe", 1.0, values)
    assert direction.source == result


# Workflow files (tools/workflow_graph.check_ui)


@pytest.fixture(scope="module")
def workflow_checker(pack, comfy_models_dir):
    from build_workflows import CORE_FILE_INPUTS, CORE_SPECS, GRAPHS, WORKFLOWS
    from emotion_director_pack.nodes import EmotionDirectorExtension
    from workflow_graph import spec_from_schema, spec_from_v1, without_notes

    specs = {cls.define_schema().node_id: spec_from_schema(cls.define_schema())
             for cls in asyncio.run(EmotionDirectorExtension().get_node_list())}
    core = json.loads(CORE_SPECS.read_text())
    specs.update({t: spec_from_v1(t, info, CORE_FILE_INPUTS.get(t)) for t, info in core.items()})
    workflows = [without_notes(json.loads((WORKFLOWS / f"{name}.json").read_text())) for name in sorted(GRAPHS)]
    return specs, workflows


MUTATION = st.tuples(st.sampled_from(["widget", "widgets_len", "type", "link_field", "inputs", "outputs", "slot_link",
                                      "drop_node", "dup_id", "drop_key"]),
                     st.integers(0, 10**6), st.integers(0, 10**6), JSON)


def _mutate(ui: dict, mutation) -> dict:
    kind, a, b, value = mutation
    ui = copy.deepcopy(ui)
    node = ui["nodes"][a % len(ui["nodes"])]
    if kind == "widget" and node.get("widgets_values"):
        node["widgets_values"][b % len(node["widgets_values"])] = value
    elif kind == "widgets_len":
        node["widgets_values"] = (node.get("widgets_values") or [])[: b % 4]
    elif kind == "type":
        node["type"] = value if isinstance(value, str) else str(value)
    elif kind == "link_field" and ui["links"]:
        link = ui["links"][a % len(ui["links"])]
        field = 1 + b % 5
        link[field] = value if field == 5 else (value if isinstance(value, int) and not isinstance(value, bool) else b)
    elif kind == "inputs":
        node["inputs"] = (node.get("inputs") or [])[: b % 3]
    elif kind == "outputs":
        node["outputs"] = (node.get("outputs") or [])[: b % 3]
    elif kind == "slot_link" and node.get("inputs"):
        node["inputs"][b % len(node["inputs"])]["link"] = b % 50
    elif kind == "drop_node":
        ui["nodes"].remove(node)
    elif kind == "dup_id":
        node["id"] = ui["nodes"][b % len(ui["nodes"])]["id"]
    elif kind == "drop_key":
        node.pop(["inputs", "outputs", "widgets_values"][b % 3], None)
    return ui


@settings(max_examples=EXAMPLES["workflow"], **FAST)
@given(st.integers(0, 3), st.lists(MUTATION, min_size=1, max_size=3))
def test_workflow_checker_reports_instead_of_crashing(workflow_checker, which, mutations):
    from build_workflows import CORE_FILE_INPUTS  # noqa: F401  (module imported by the fixture)
    from workflow_graph import check_ui

    specs, workflows = workflow_checker
    original = workflows[which % len(workflows)]
    ui = original
    for mutation in mutations:
        ui = _mutate(ui, mutation)
    problems = check_ui(ui, specs, _asset_files())
    assert isinstance(problems, list) and all(isinstance(p, str) for p in problems)
    if any(kind == "type" and not (isinstance(v, str) and v in specs) for kind, _, _, v in mutations):
        assert problems


def _asset_files() -> dict[str, set[str]]:
    from pathlib import PurePosixPath

    from build_workflows import EXAMPLE_IMAGE
    from emotion_core.testing.assets import TEST_FILES

    files: dict[str, set[str]] = {"input": {EXAMPLE_IMAGE}}
    for path in TEST_FILES.values():
        folder, *rest = PurePosixPath(path).parts
        files.setdefault(folder, set()).add(str(PurePosixPath(*rest)))
    return files


# Preference dataset rows


ROW_FIELD = st.sampled_from(["images/a.png", "images/b.png", "../a.png", "/etc/passwd", "images", "", "images/none.png"])
ROW = st.one_of(
    JSON,
    st.fixed_dictionaries({"chosen": ROW_FIELD | JSON, "rejected": ROW_FIELD | JSON, "prompt": st.text(max_size=20) | JSON,
                           "target_emotion": st.sampled_from(EMOTIONS) | JSON},
                          optional={"negative_emotion": st.sampled_from(EMOTIONS) | JSON,
                                    "visual_prompts": JSON | st.fixed_dictionaries(
                                        {"positive": st.fixed_dictionaries({"tokens": ROW_FIELD | JSON,
                                                                            "role": JSON}) | JSON}),
                                    "id": JSON}))
LINE = st.one_of(ROW.map(lambda row: json.dumps(row).encode()), st.binary(max_size=40).filter(lambda b: b"\n" not in b))


@pytest.fixture(scope="module")
def dataset_root(tmp_path_factory):
    from PIL import Image

    root = tmp_path_factory.mktemp("dataset")
    (root / "images").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (8, 8)).save(root / "images" / f"{name}.png")
    return root


@settings(max_examples=EXAMPLES["dataset"], **FAST)
@given(st.lists(LINE, max_size=8))
def test_dataset_reader_skips_corrupt_rows_with_a_count(dataset_root, lines):
    from emotion_core.preference import PAIRS_FILE, read_dataset

    (dataset_root / PAIRS_FILE).write_bytes(b"\n".join(lines))
    result = read_dataset(dataset_root)
    counted = sum(1 for line in b"\n".join(lines).split(b"\n") if line.strip())
    assert len(result.pairs) + len(result.skipped) == counted
    for pair in result.pairs:
        assert dataset_root.resolve() in pair.chosen.parents and pair.target_emotion in EMOTIONS
    assert all(isinstance(why, str) and why for _, why in result.skipped)


@settings(max_examples=EXAMPLES["dataset"], **FAST)
@given(st.lists(JSON | st.fixed_dictionaries({"img_src_path": ROW_FIELD, "img_tgt_path": ROW_FIELD | JSON,
                                              "class_source": st.sampled_from(EMOTIONS) | JSON,
                                              "class_target": st.sampled_from(EMOTIONS) | JSON,
                                              "prompt": st.text(max_size=10) | JSON}), min_size=1, max_size=6))
def test_emopair_reader_never_crashes(tmp_path_factory, rows):
    from PIL import Image

    from emotion_core.preference import read_dataset

    root = tmp_path_factory.mktemp("emopair")
    (root / "images").mkdir()
    Image.new("RGB", (8, 8)).save(root / "images" / "a.png")
    Image.new("RGB", (8, 8)).save(root / "images" / "b.png")
    # the first row always has the EmoPair keys so the layout is detected; later rows are arbitrary
    head = {"img_src_path": "images/a.png", "img_tgt_path": "images/b.png", "class_source": "fear",
            "class_target": "awe", "prompt": "p"}
    (root / "data.json").write_text(json.dumps([head, *rows]))
    result = read_dataset(root)
    assert result.layout == "emopair" and len(result.pairs) + len(result.skipped) == len(rows) + 1


# Agent answers


def _clean(text: str) -> bool:
    return not any(unicodedata.category(ch)[0] == "C" for ch in text)


def _check_answer(answer) -> None:
    try:
        proposals = parse_answer(answer)
    except AgentAnswerError:
        return
    assert len(proposals) >= 2
    for proposal in proposals:
        for text in (proposal.name, proposal.phrase):
            assert isinstance(text, str) and _clean(text) and 0 < len(text) <= 100


@settings(max_examples=EXAMPLES["agent_text"], **FAST)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=50).map(lambda b: b.decode("latin-1")),
                 JSON, st.text(alphabet="[]{}\",: 0a", max_size=300)))
def test_agent_text_never_raises_foreign_errors(answer):
    _check_answer(answer)


CONCEPT = st.fixed_dictionaries({"family": st.sampled_from(["lighting", "colour", "color", "object", "scene", "Light",
                                                            "facial expression"]) | JSON,
                                 "concept": st.text(max_size=30) | JSON, "phrase": st.text(max_size=120) | JSON})


@settings(max_examples=EXAMPLES["agent_json"], **FAST)
@given(st.lists(CONCEPT | JSON, max_size=10), st.sampled_from(["{}", "```json\n{}\n```", "  {}  "]))
def test_agent_json_never_raises_foreign_errors(concepts, wrapper):
    _check_answer(wrapper.replace("{}", json.dumps({"concepts": concepts}, ensure_ascii=False)))
