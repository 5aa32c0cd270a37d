"""Prompt bank maths and format without ComfyUI: K-means, the EmoSet folder scan,
retrieval, the file format's checks, and bank -> visual prompt tokens."""

import json

import pytest
import torch
import torch.nn.functional as F

from emotion_core.bank import PromptBank, kmeans, load_bank
from emotion_core.bank.dataset import scan_emotion_folder, words_from_name
from emotion_core.bank.store import PROBE_TEXTS, save_bank
from emotion_core.bank.retrieval import bank_visual_prompt
from emotion_core.errors import InvalidInputError, ModelFormatError
from emotion_core.testing.adapter_assets import adapter_shapes, random_state_dict
from emotion_core.visual_prompt import NEGATIVE, NEGATIVE_VISUAL, POSITIVE, ProjectedPrompt, VisualPromptAdapter

TEXT_DIM, VISUAL_DIM = 16, 1024


def blobs(seed=0, per=30, spread=0.05):
    g = torch.Generator().manual_seed(seed)
    means = torch.tensor([[5.0, 0, 0], [0, 5.0, 0], [0, 0, 5.0]])
    points = torch.cat([m + spread * torch.randn(per, 3, generator=g) for m in means])
    return points, torch.arange(3).repeat_interleave(per), means


def test_kmeans_recovers_separable_clusters():
    points, truth, means = blobs()
    result = kmeans(points, 3, seed=1)
    for cluster in range(3):  # every found cluster is exactly one true cluster
        assert truth[result.labels == cluster].unique().numel() == 1
    order = torch.cdist(means, result.centres).argmin(dim=1)
    torch.testing.assert_close(result.centres[order], means, atol=0.05, rtol=0)


def test_kmeans_is_deterministic_and_caps_k():
    points, _, _ = blobs(seed=2, spread=1.5)
    a, b = kmeans(points, 5, seed=7), kmeans(points, 5, seed=7)
    assert torch.equal(a.labels, b.labels) and torch.equal(a.centres, b.centres)
    assert kmeans(points[:2], 5).centres.shape == (2, 3)
    with pytest.raises(InvalidInputError):
        kmeans(torch.zeros(0, 3), 2)


def _touch_png(path):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)


def test_scan_reads_captions_and_is_case_insensitive(tmp_path):
    _touch_png(tmp_path / "Awe" / "big_mountain_001.png")
    _touch_png(tmp_path / "Awe" / "x.png")
    (tmp_path / "Awe" / "x.txt").write_text("a starry night sky\n")
    _touch_png(tmp_path / "FEAR" / "y.png")
    (tmp_path / "FEAR" / "captions.jsonl").write_text(json.dumps({"file": "y.png", "caption": "a dark alley"}) + "\n")
    (tmp_path / "sadness").mkdir()  # no images: left out
    found = scan_emotion_folder(tmp_path)
    assert list(found) == ["awe", "fear"]
    assert [i.caption for i in found["awe"]] == ["big mountain", "a starry night sky"]
    assert found["fear"][0].caption == "a dark alley"
    assert words_from_name(tmp_path / "0001.png", "awe") == "awe"


def test_scan_errors(tmp_path):
    _touch_png(tmp_path / "joy" / "a.png")
    with pytest.raises(InvalidInputError, match="not emotions.*amusement, awe, contentment"):
        scan_emotion_folder(tmp_path)
    empty = tmp_path / "empty"
    (empty / "awe").mkdir(parents=True)
    with pytest.raises(InvalidInputError, match="no images found"):
        scan_emotion_folder(empty)
    (tmp_path / "bad" / "awe").mkdir(parents=True)
    _touch_png(tmp_path / "bad" / "awe" / "a.png")
    (tmp_path / "bad" / "awe" / "captions.jsonl").write_text('{"file": "a.png"}\n')
    with pytest.raises(InvalidInputError, match="captions.jsonl:1"):
        scan_emotion_folder(tmp_path / "bad")


def make_bank(text_centres=None, seed=0, emotions=("awe", "fear")):
    g = torch.Generator().manual_seed(seed)
    text = text_centres or {e: F.normalize(torch.randn(3, TEXT_DIM, generator=g), dim=-1) for e in emotions}
    visual = {e: torch.randn(t.shape[0], VISUAL_DIM, generator=g) for e, t in text.items()}
    counts = {e: torch.arange(1, t.shape[0] + 1) for e, t in text.items()}
    probe = F.normalize(torch.randn(len(PROBE_TEXTS), TEXT_DIM, generator=g), dim=-1)
    meta = {"text_encoder": {"kind": "open_clip", "file": "clip.safetensors", "dim": TEXT_DIM},
            "image_encoder": {"kind": "clip", "name": "clip.safetensors", "dim": VISUAL_DIM}}
    return PromptBank(text, visual, counts, probe, meta)


def test_retrieval_picks_the_centre_nearest_to_the_query():
    basis = torch.eye(TEXT_DIM)[:3]  # three orthogonal text centres
    bank = make_bank({"awe": basis})
    query = F.normalize(basis[2] * 0.9 + basis[0] * 0.3, dim=0)
    top1 = bank.retrieve("AWE", query, 1)
    assert top1.indices == (2,)
    torch.testing.assert_close(top1.features[0], bank.visual_centres["awe"][2])
    top2 = bank.retrieve("awe", query, 2)
    assert top2.indices == (2, 0) and top2.weights[0] > top2.weights[1]
    assert abs(float(top2.weights.sum()) - 1) < 1e-6
    largest = bank.retrieve("awe", None, 5)  # no text: largest clusters, capped at K
    assert largest.indices == (2, 1, 0)


def test_retrieval_errors():
    bank = make_bank()
    with pytest.raises(InvalidInputError, match="no 'anger' images; it holds: awe, fear"):
        bank.retrieve("anger", None, 1)
    with pytest.raises(InvalidInputError, match="unknown emotion"):
        bank.retrieve("joy", None, 1)
    with pytest.raises(InvalidInputError, match="query features"):
        bank.retrieve("awe", torch.zeros(TEXT_DIM + 1), 1)


def test_text_probe_detects_another_encoder():
    bank = make_bank()
    bank.check_text_encoder(lambda texts: bank.text_probe.clone())
    with pytest.raises(InvalidInputError, match="not the one this bank was built with"):
        bank.check_text_encoder(lambda texts: torch.roll(bank.text_probe, 1, dims=0))
    with pytest.raises(InvalidInputError, match="512-d features"):
        bank.check_text_encoder(lambda texts: torch.zeros(len(texts), 512))


def test_file_round_trip_and_corrupt_files(tmp_path):
    bank = make_bank()
    path = save_bank(bank, tmp_path / "bank.safetensors")
    loaded = load_bank(path)
    assert loaded.emotions == ("awe", "fear") and loaded.text_encoder_file == "clip.safetensors"
    torch.testing.assert_close(loaded.visual_centres["fear"], bank.visual_centres["fear"])
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ModelFormatError, match="not a valid safetensors"):
        load_bank(truncated)
    from emotion_core.weights import save_safetensors

    other = save_safetensors({"x": torch.zeros(2)}, tmp_path / "other.safetensors", {"kind": "clip_zero_shot"})
    with pytest.raises(ModelFormatError, match="not a prompt bank"):
        load_bank(other)
    tensors = bank.tensors()
    tensors["visual_centres.awe"] = tensors["visual_centres.awe"][:2]
    broken = save_safetensors(tensors, tmp_path / "broken.safetensors",
                              {**bank.metadata, "kind": "emotion_prompt_bank", "format_version": 1})
    with pytest.raises(ModelFormatError, match="broken.safetensors: prompt bank: 'awe'"):
        load_bank(broken)


def adapter(variant="base", feature_dim=None, seed=0):
    shapes = adapter_shapes(variant, 768, (32, 64), resampler_dim=64, resampler_heads=1, depth=1)
    if feature_dim:
        shapes["image_proj.proj.weight"] = (shapes["image_proj.proj.weight"][0], feature_dim)
    return VisualPromptAdapter.from_state_dict(random_state_dict(shapes, seed=seed, dtype=torch.float32))


def test_tokens_from_a_bank_are_accepted_by_the_injection():
    bank, base = make_bank(), adapter()
    query = bank.text_centres["awe"][1]
    weighted = bank_visual_prompt(base, bank, "awe", query, 2)
    assert weighted.tokens[POSITIVE].shape == (4, 768) and weighted.tokens[NEGATIVE].shape == (4, 768)
    assert NEGATIVE_VISUAL not in weighted.tokens
    torch.testing.assert_close(weighted.tokens[NEGATIVE], base.project(torch.zeros(1, VISUAL_DIM))[0])
    concat = bank_visual_prompt(base, bank, "awe", query, 2, combine="concat", negative_emotion="fear")
    assert concat.tokens[POSITIVE].shape == (8, 768) and concat.tokens[NEGATIVE_VISUAL].shape == (8, 768)
    # the negative emotion goes to the negative visual branch; the unconditional branch stays neutral
    torch.testing.assert_close(concat.tokens[NEGATIVE], base.project(torch.zeros(1, VISUAL_DIM))[0].repeat(2, 1))
    fear = bank.retrieve("fear", query, 2)
    torch.testing.assert_close(concat.tokens[NEGATIVE_VISUAL], base.project(fear.features).reshape(-1, 768))
    assert concat.source == "bank:awe|neg:bank:fear"
    top1 = bank_visual_prompt(base, bank, "awe", query, 1)
    torch.testing.assert_close(top1.tokens[POSITIVE], base.project(bank.visual_centres["awe"][1:2])[0])
    projected = ProjectedPrompt.from_prompt(base, concat)
    assert set(projected.roles) == {POSITIVE, NEGATIVE, NEGATIVE_VISUAL} and projected.tokens(POSITIVE) == 8


def make_plus_bank(seed=0, tokens=5, width=1280):
    base = make_bank(seed=seed)
    g = torch.Generator().manual_seed(seed + 1)
    hidden = {e: torch.randn(t.shape[0], tokens, width, generator=g) for e, t in base.text_centres.items()}
    return PromptBank(base.text_centres, base.visual_centres, base.counts, base.text_probe,
                      {**base.metadata, "built_for": "ip-adapter-plus"}, {"visual_hidden_centres": hidden})


def test_plus_bank_round_trip_and_tokens(tmp_path):
    bank = make_plus_bank()
    loaded = load_bank(save_bank(bank, tmp_path / "plus.safetensors"))
    assert loaded.kind.name == "ip-adapter-plus"
    torch.testing.assert_close(loaded.kind_centres("fear"), bank.extra_centres["visual_hidden_centres"]["fear"])
    plus = adapter("plus")
    query = bank.text_centres["awe"][2]
    prompt = bank_visual_prompt(plus, loaded, "awe", query, 1, negative_emotion="fear")
    hidden = loaded.kind_centres("awe")[2:3]
    torch.testing.assert_close(prompt.tokens[POSITIVE], plus.project(hidden)[0])
    torch.testing.assert_close(prompt.tokens[NEGATIVE], plus.project(torch.zeros(1, 5, 1280))[0])
    weighted = bank_visual_prompt(plus, loaded, "awe", query, 2)  # weights broadcast over [k, T, D]
    hit = loaded.retrieve("awe", query, 2)
    mean = (hit.weights[:, None, None] * hit.features).sum(dim=0, keepdim=True)
    torch.testing.assert_close(weighted.tokens[POSITIVE], plus.project(mean)[0])
    with pytest.raises(InvalidInputError, match="built for ip-adapter-plus adapters.*base adapter reads image_embeds"):
        bank_visual_prompt(adapter(), loaded, "awe", None, 1)
    # a bank saved before kinds existed (no built_for) is a base bank and still loads
    legacy = bank.tensors()
    legacy = {k: v for k, v in legacy.items() if not k.startswith("visual_hidden_centres.")}
    from emotion_core.weights import save_safetensors

    old = save_safetensors(legacy, tmp_path / "old.safetensors",
                           {**make_bank().metadata, "kind": "emotion_prompt_bank", "format_version": 1})
    assert load_bank(old).kind.name == "ip-adapter"
    missing = save_safetensors(legacy, tmp_path / "missing.safetensors",
                               {**bank.metadata, "kind": "emotion_prompt_bank", "format_version": 1})
    with pytest.raises(ModelFormatError, match="visual_hidden_centres.awe is None"):
        load_bank(missing)


def test_tokens_dimension_and_variant_mismatch():
    bank = make_bank()
    with pytest.raises(InvalidInputError, match="1024-d .clip clip.safetensors. but this adapter reads 768-d"):
        bank_visual_prompt(adapter(feature_dim=768), bank, "awe", None, 1)
    with pytest.raises(InvalidInputError, match="built for ip-adapter adapters .image_embeds.; this sd15 plus adapter"):
        bank_visual_prompt(adapter("plus"), bank, "awe", None, 1)
    with pytest.raises(InvalidInputError, match="combine must be one of"):
        bank_visual_prompt(adapter(), bank, "awe", None, 1, combine="sum")
