import math

import pytest
import torch
from hypothesis import given, strategies as st

from emotion_core.direction import (
    EmotionDirection,
    make_direction,
    parse_blend,
    source_distribution,
    validate_distribution,
)
from emotion_core.errors import InvalidInputError
from emotion_core.taxonomy import (
    EMOEDITOR_ORDER,
    EMOTIONS,
    parse_emotion,
    remap_from_canonical,
    remap_to_canonical,
    valence,
)


def test_canonical_order_positives_first():
    assert EMOTIONS == ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")
    assert [valence(e) for e in EMOTIONS] == [1, 1, 1, 1, -1, -1, -1, -1]
    assert EMOEDITOR_ORDER == ("amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness")


@pytest.mark.parametrize("name", ["AWE", " Awe ", "awe"])
def test_names_are_case_insensitive(name):
    assert parse_emotion(name) == "awe"


def test_unknown_emotion_lists_the_eight():
    with pytest.raises(InvalidInputError) as err:
        parse_emotion("joy")
    assert "'joy'" in str(err.value)
    for e in EMOTIONS:
        assert e in str(err.value)


def test_remap_alphabetical_to_canonical_and_back():
    # Scores in EmoEditor's order where each value is its index there.
    alpha = torch.arange(8, dtype=torch.float32)
    canon = remap_to_canonical(alpha, EMOEDITOR_ORDER)
    assert canon.tolist() == [float(EMOEDITOR_ORDER.index(e)) for e in EMOTIONS]
    assert torch.equal(remap_from_canonical(canon, EMOEDITOR_ORDER), alpha)


def test_class_order_must_be_a_permutation():
    with pytest.raises(InvalidInputError):
        remap_to_canonical(torch.zeros(8), ["awe"] * 8)


def test_direction_is_target_minus_source():
    source = torch.tensor([0.05, 0.05, 0.1, 0.1, 0.3, 0.1, 0.2, 0.1])
    d = make_direction("awe", 1.0, source)
    expected = -source.clone()
    expected[1] += 1.0
    assert torch.allclose(d.vector(), expected)
    assert math.isclose(float(d.vector().sum()), 0.0, abs_tol=1e-6)


def test_strength_scales_and_is_bounded():
    d = make_direction("fear", 0.5)
    assert d.scaled()[EMOTIONS.index("fear")] == pytest.approx(0.5)
    for bad in (-0.1, 2.01, float("nan"), float("inf")):
        with pytest.raises(InvalidInputError, match="strength"):
            make_direction("fear", bad)


def test_blend_is_normalised():
    d = make_direction("awe:3, contentment:1")
    assert d.target == {"awe": 0.75, "contentment": 0.25}
    assert d.primary == "awe"
    with pytest.raises(InvalidInputError, match="number"):
        parse_blend("awe:lots")
    with pytest.raises(InvalidInputError, match="zero"):
        parse_blend("awe:0")
    with pytest.raises(InvalidInputError, match="joy"):
        parse_blend("joy:1")


def test_direction_in_emoeditor_order():
    d = make_direction("anger", 1.0)
    alpha = d.in_order(EMOEDITOR_ORDER)
    assert alpha[EMOEDITOR_ORDER.index("anger")] == 1.0 and alpha.sum() == 1.0


def test_source_distribution_checked():
    with pytest.raises(InvalidInputError, match="8 probabilities"):
        validate_distribution([0.5, 0.5])
    with pytest.raises(InvalidInputError, match="sum to 1"):
        validate_distribution([0.5] * 8)
    with pytest.raises(InvalidInputError, match="finite"):
        validate_distribution([float("nan")] + [0.0] * 7)


def test_json_shape():
    report = make_direction("awe", 1.5, [0.125] * 8).to_json()
    assert report["target"] == "awe" and report["strength"] == 1.5
    assert list(report["direction"]) == list(EMOTIONS) and list(report["source"]) == list(EMOTIONS)
    assert make_direction("awe").to_json()["source"] is None


@given(st.lists(st.floats(min_value=0.0, max_value=10.0), min_size=8, max_size=8).filter(lambda w: sum(w) > 1e-3),
       st.floats(min_value=0.0, max_value=2.0))
def test_blend_weights_property(weights, strength):
    d = make_direction(dict(zip(EMOTIONS, weights)), strength)
    assert sum(d.target.values()) == pytest.approx(1.0)
    assert float(d.scaled().sum()) == pytest.approx(strength, abs=1e-5)
    assert isinstance(d, EmotionDirection)


@given(st.text(max_size=40))
def test_parse_emotion_never_crashes(text):
    try:
        assert parse_emotion(text) in EMOTIONS
    except InvalidInputError:
        pass


def test_source_distribution_is_one_image_or_the_batch_mean():
    one = torch.softmax(torch.arange(8.0), dim=0)
    other = torch.full((8,), 0.125)
    assert source_distribution(one[None]) == pytest.approx(one.tolist())
    assert source_distribution(one) == pytest.approx(one.tolist())
    assert source_distribution(torch.stack([one, other])) == pytest.approx(((one + other) / 2).tolist())
    with pytest.raises(InvalidInputError, match=r"expected \[B, 8\]"):
        source_distribution(torch.zeros(0, 8))
    with pytest.raises(InvalidInputError, match="finite"):
        source_distribution(torch.full((1, 8), float("nan")))
