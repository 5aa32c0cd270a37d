import pytest
import torch

from emotion_core.conditioning import EMOTION_DESCRIPTORS, Encoded, emotion_delta, replace_tokens, steer_conditioning
from emotion_core.direction import make_direction
from emotion_core.emotion_encoder import EmotionEncoder, load_emotion_encoder
from emotion_core.errors import ModelFormatError
from emotion_core.taxonomy import EMOEDITOR_ORDER, EMOTIONS
from emotion_core.testing.assets import TEST_FILES
from emotion_core.testing.encoder_assets import write_test_encoder


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    return write_test_encoder(tmp_path_factory.mktemp("models"), TEST_FILES)["emotion_encoder"]


def test_encoder_loads_released_layout_and_maps_to_77x768(encoder_file):
    encoder = load_emotion_encoder(encoder_file)
    assert [k for k in encoder.state_dict()] == ["fc.0.weight", "fc.0.bias", "fc.2.weight", "fc.2.bias",
                                                  "fc.4.weight", "fc.4.bias", "fc.6.weight", "fc.6.bias"]
    tokens = encoder.encode(make_direction("awe", 1.0, [0.125] * 8))
    assert tokens.shape == (1, 77, 768) and torch.isfinite(tokens).all()


def test_encoder_input_is_in_alphabetical_order(encoder_file):
    encoder = load_emotion_encoder(encoder_file)
    d = make_direction("anger", 1.0)
    one_hot = torch.zeros(1, 8)
    one_hot[0, EMOEDITOR_ORDER.index("anger")] = 1.0
    assert torch.allclose(encoder.encode(d), encoder(one_hot))


def test_released_pt_checkpoint_loads_weights_only(tmp_path):
    reference = EmotionEncoder()
    torch.save(reference.state_dict(), tmp_path / "model_emoenc.pt")
    loaded = load_emotion_encoder(tmp_path / "model_emoenc.pt")
    x = torch.randn(2, 8)
    assert torch.allclose(loaded(x), reference(x))


def test_wrong_shapes_are_a_clear_error(tmp_path):
    state = EmotionEncoder().state_dict()
    state["fc.6.weight"] = state["fc.6.weight"][:100]
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ModelFormatError, match="fc.6.weight"):
        load_emotion_encoder(tmp_path / "bad.pt")
    torch.save({"weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(ModelFormatError, match="not an EmoEditor emotion encoder"):
        load_emotion_encoder(tmp_path / "other.pt")


class RecordingEncoder:
    """A deterministic text encoder: each prompt maps to a fixed random [1,77,8] + pooled [1,4]."""

    def __init__(self):
        self.calls = []

    def __call__(self, text):
        self.calls.append(text)
        g = torch.Generator().manual_seed(sum(map(ord, text)) + len(text))
        return Encoded(torch.randn(1, 77, 8, generator=g), torch.randn(1, 4, generator=g))


def test_delta_matches_hand_computation():
    enc = RecordingEncoder()
    source = [0.0, 0.0, 0.0, 0.0, 0.5, 0.0, 0.5, 0.0]
    d = make_direction("awe", 0.8, source)
    delta = emotion_delta(enc, d)
    neutral = enc("")
    want = torch.zeros(1, 77, 8)
    for e, w in {"awe": 0.8, "anger": -0.4, "fear": -0.4}.items():
        want += w * (enc(EMOTION_DESCRIPTORS[e]).tokens - neutral.tokens)
    assert torch.allclose(delta.tokens, want, atol=1e-6)
    # one encode per non-zero emotion plus the neutral prompt
    assert len(enc.calls) == 1 + 3 + 1 + 3


def test_zero_strength_leaves_conditioning_unchanged():
    cond = [[torch.randn(1, 77, 8), {"pooled_output": torch.randn(1, 4)}]]
    out = steer_conditioning(cond, emotion_delta(RecordingEncoder(), make_direction("awe", 0.0)))
    assert torch.equal(out[0][0], cond[0][0]) and torch.equal(out[0][1]["pooled_output"], cond[0][1]["pooled_output"])


def test_steering_tiles_long_prompts_and_does_not_mutate():
    enc = RecordingEncoder()
    delta = emotion_delta(enc, make_direction("sadness", 1.0))
    base_tokens = torch.randn(2, 154, 8)
    cond = [[base_tokens.clone(), {"pooled_output": torch.zeros(2, 4), "area": (1, 2)}]]
    out = steer_conditioning(cond, delta)
    assert torch.equal(cond[0][0], base_tokens) and torch.equal(cond[0][1]["pooled_output"], torch.zeros(2, 4))
    diff = out[0][0] - base_tokens
    assert torch.allclose(diff[:, :77], delta.tokens.expand(2, -1, -1), atol=1e-6)
    assert torch.allclose(diff[:, 77:], delta.tokens.expand(2, -1, -1), atol=1e-6)
    assert out[0][1]["area"] == (1, 2)
    assert torch.allclose(out[0][1]["pooled_output"], delta.pooled.expand(2, -1))


def test_every_emotion_has_a_descriptor():
    assert set(EMOTION_DESCRIPTORS) == set(EMOTIONS)


def test_replace_tokens_keeps_every_entry_but_its_pooled_vector():
    tokens = torch.ones(1, 77, 768)
    area = {"area": (8, 8, 0, 0), "pooled_output": torch.zeros(1, 768)}
    concat = {"concat_latent_image": torch.zeros(1, 4, 8, 8)}
    conditioning = [[torch.zeros(1, 77, 768), area], [torch.zeros(1, 77, 768), concat]]
    out = replace_tokens(conditioning, tokens)
    assert [entry[0] is tokens for entry in out] == [True, True]
    assert out[0][1] == {"area": (8, 8, 0, 0)} and out[1][1] is not concat and list(out[1][1]) == ["concat_latent_image"]
    assert "pooled_output" in area, "the input is not mutated"
    assert replace_tokens(None, tokens) == [[tokens, {}]]
