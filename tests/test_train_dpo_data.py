"""train-dpo's data side: EmoSet-118K and EmoPair pairs get both visual prompts from a prompt
bank by caption (never their own images); ``--dry-run --json`` shows the provenance of every
pair; the negative-emotion policies; recorded tokens are kept; clear errors."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from emotion_core.bank import load_bank
from emotion_core.bank.feature_encoders import load_text_encoder
from emotion_core.cli import main
from emotion_core.cli.train_dpo_data import add_data_arguments, load_examples
from emotion_core.errors import InvalidInputError
from emotion_core.taxonomy import EMOTIONS, valence
from emotion_core.testing.assets import TEST_FILES
from emotion_core.testing.emoset_assets import write_emopair_tree, write_emoset_tree


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    root = tmp_path_factory.mktemp("dpo_data")
    return {"emoset": write_emoset_tree(root / "EmoSet-118K")["emoset_root"],
            "emopair": write_emopair_tree(root / "EmoPair-tiny")["emopair_root"]}


@pytest.fixture(scope="module")
def bank_file(comfy_models_dir):
    """The random test bank; its text tower (the CLIP B/32 critic) is found in ../emotion_critic/."""
    return comfy_models_dir / TEST_FILES["bank"]


@pytest.fixture(scope="module")
def encode(comfy_models_dir):
    return load_text_encoder(comfy_models_dir / TEST_FILES["critic_clip_b32"])


def dry_run(capsys, data, bank, *extra):
    code = main(["train-dpo", "--data", str(data), "--bank", str(bank), "--dry-run", "--json", *map(str, extra)])
    out, err = capsys.readouterr()
    assert code == 0, err
    (line,) = out.strip().splitlines()
    return json.loads(line)


def nearest_clusters(bank, encode, emotion, caption, k=1):
    cosine = F.normalize(bank.text_centres[emotion], dim=-1) @ encode([caption])[0]
    return torch.argsort(cosine, descending=True, stable=True)[:k].tolist()


def test_emoset_dry_run_retrieves_both_prompts_from_the_bank(capsys, trees, bank_file, encode):
    result = dry_run(capsys, trees["emoset"], bank_file)
    assert result["dataset_layout"] == "emoset-118k" and result["count"] == 6 * len(EMOTIONS)
    assert result["skipped"] == 0
    bank = load_bank(bank_file)
    for pair in result["pairs"]:
        target = pair["id"].split("/")[0]
        positive, negative = pair["positive"], pair["negative"]
        assert positive["source"] == negative["source"] == "bank"
        assert positive["emotion"] == target and f"/image/{target}/" in pair["chosen"]
        # the loser is an image of another emotion; the negative visual prompt is that emotion's for this caption
        assert valence(negative["emotion"]) != valence(target) and f"/image/{negative['emotion']}/" in pair["rejected"]
        assert positive["clusters"] == nearest_clusters(bank, encode, target, pair["caption"])
        assert negative["clusters"] == nearest_clusters(bank, encode, negative["emotion"], pair["caption"])
        assert pair["rejected_caption"] and pair["caption"] != pair["rejected"]


def test_emopair_dry_run(capsys, trees, bank_file):
    result = dry_run(capsys, trees["emopair"], bank_file)
    rows = json.loads((trees["emopair"] / "json" / "data_EmoPair.json").read_text())
    assert result["dataset_layout"] == "emopair" and result["count"] == len(rows)
    for pair, row in zip(result["pairs"], rows):
        assert pair["caption"] == row["prompt"] and pair["chosen"].endswith(row["img_tgt_path"])
        assert (pair["positive"]["emotion"], pair["negative"]["emotion"]) == (row["class_target"], row["class_source"])
        assert pair["positive"]["source"] == pair["negative"]["source"] == "bank"


def test_named_and_most_confused_policies(capsys, trees, bank_file, comfy_models_dir):
    named = dry_run(capsys, trees["emopair"], bank_file, "--negative-emotion", "Fear")
    assert {p["negative"]["emotion"] for p in named["pairs"]} == {"fear"}
    assert named["skipped"] == sum(p["class_target"] == "fear" for p in json.loads(
        (trees["emopair"] / "json" / "data_EmoPair.json").read_text()))
    critic_file = comfy_models_dir / TEST_FILES["critic_clip_b32"]
    confused = dry_run(capsys, trees["emopair"], bank_file, "--negative-emotion", "most-confused", "--critic",
                       critic_file, "--confusion-images", trees["emoset"])
    from emotion_core.critics import load_critic
    from emotion_core.training.data import as_image, load_square

    critic = load_critic(critic_file)
    emoset_images = sorted((trees["emoset"] / "image").glob("*/*.jpg"))
    train = {f"{e[0]}/{e[1]}" for e in json.loads((trees["emoset"] / "train.json").read_text())}  # --split train
    for pair in confused["pairs"]:
        target = pair["positive"]["emotion"]
        paths = [p for p in emoset_images if f"{p.parent.name}/{p.stem}" in train and p.parent.name == target]
        mean = torch.cat([critic(as_image(load_square(p, 224))) for p in paths]).mean(dim=0)
        mean[EMOTIONS.index(target)] = -1
        assert pair["negative"]["emotion"] == EMOTIONS[int(mean.argmax())]


def test_without_a_bank_is_a_clear_error(capsys, trees):
    code = main(["train-dpo", "--data", str(trees["emoset"]), "--dry-run", "--json"])
    err = capsys.readouterr().err
    assert code == 2 and "have no recorded visual prompts" in err and "--bank BANK" in err
    code = main(["train-dpo", "--data", str(trees["emoset"]), "--dry-run", "--negative-emotion", "joy"])
    assert code == 2 and "--negative-emotion must be one of" in capsys.readouterr().err


def _args(*argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--data")
    add_data_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_load_examples_embeds_and_bank_kind(trees, bank_file, comfy_models_dir):
    from emotion_core.visual_prompt import load_adapter

    base = load_adapter(comfy_models_dir / TEST_FILES["adapter_sd15"])
    examples, skipped = load_examples(_args("--data", trees["emopair"], "--bank", bank_file), base.layout.cross_dim,
                                      base.layout)
    assert len(examples) == 8 and not skipped
    bank = load_bank(bank_file)
    for example in examples:
        assert example.positive.embeds.shape == (1, 1024) and example.negative.embeds.shape == (1, 1024)
        assert not example.needs_encoder and example.positive.images == () and example.negative.tokens is None
        (cluster,) = example.provenance["positive"]["clusters"]
        torch.testing.assert_close(example.positive.embeds[0], bank.visual_centres[example.pair.target_emotion][cluster])
    mixed, _ = load_examples(_args("--data", trees["emopair"], "--bank", bank_file, "--top-k", "3"), 768)
    first = mixed[0].provenance["positive"]
    hit = bank.retrieve(first["emotion"], None, 1)  # shapes only: a weighted mix of 3 centres is one prompt
    assert len(first["clusters"]) == 3 and mixed[0].positive.embeds.shape == hit.features.shape
    plus = load_adapter(comfy_models_dir / TEST_FILES["adapter_sd15_plus"])
    with pytest.raises(InvalidInputError, match="built for ip-adapter adapters"):
        load_examples(_args("--data", trees["emopair"], "--bank", bank_file), plus.layout.cross_dim, plus.layout)
    examples, _ = load_examples(_args("--data", trees["emopair"], "--bank", comfy_models_dir / TEST_FILES["bank_plus"]),
                                plus.layout.cross_dim, plus.layout)
    assert examples[0].positive.embeds.shape == (1, 16, 1280)  # hidden-state centres for the Resampler


def test_recorded_tokens_are_kept_and_own_images_are_not_prompts(capsys, tmp_path, bank_file):
    from emotion_core.preference import PreferenceStore
    from emotion_core.visual_prompt import VisualPrompt

    store = PreferenceStore(tmp_path / "pairs")
    g = torch.Generator().manual_seed(0)
    prompt, other = (VisualPrompt({"positive": torch.randn(4, 768, generator=g), "negative": torch.zeros(4, 768)},
                                  "sd15", "base", 768, source) for source in ("bank:awe", "bank:fear"))
    store.add(Image.new("RGB", (16, 16), "red"), Image.new("RGB", (16, 16), "blue"), "a harbour", "awe", "fear",
              prompt, other)
    store.add(Image.new("RGB", (16, 16), "green"), Image.new("RGB", (16, 16), "black"), "a dark forest", "sadness",
              "amusement")
    result = dry_run(capsys, tmp_path / "pairs", bank_file)
    recorded, bare = result["pairs"]
    assert recorded["positive"]["role"] == "positive" and recorded["negative"]["role"] == "negative_visual"
    assert recorded["positive"]["source"] != "bank"
    assert bare["positive"]["source"] == bare["negative"]["source"] == "bank"
    assert (bare["positive"]["emotion"], bare["negative"]["emotion"]) == ("sadness", "amusement")
    examples, _ = load_examples(_args("--data", tmp_path / "pairs", "--bank", bank_file), 768)
    torch.testing.assert_close(examples[0].positive.tokens, prompt.tokens["positive"])
