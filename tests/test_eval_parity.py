"""``eval``'s metrics against reference implementations of the upstream formulas, written here from
reading EmoGen's ``training/inference.py`` (emo_cls), EmoEdit's ``metrics/Metric_args.py``
(crop_img, count_ssim, Emo_S) and ``metrics/ACC_args.py``, on the same inputs (tolerance 1e-3; the
values agree to ~1e-7). skimage's ``structural_similarity`` is the reference for EmoEdit's SSIM
because EmoEdit calls it. ESMI and EmoEditor's SSIM gate are this project's existing
implementations (parity-tested in test_esmi_upstream.py / test_ssim.py); here the rows must hold
exactly their values."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers.eval_data import noise_image, write_edit_manifest, write_emotion_tree
from PIL import Image

from emotion_core.cli import main
from emotion_core.critics import load_critic

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TOLERANCE = 1e-3
UPSTREAM_ORDER = ["amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"]


@pytest.fixture(scope="module")
def critics(eval_critics):
    return eval_critics


def _eval(argv):
    assert main(["eval", "score", *map(str, argv), "--workers", "0", "--no-progress"]) == 0


def _reference_probabilities(critic, image: Image.Image) -> torch.Tensor:
    """The upstream classifier: ``softmax(head(CLIP image features))`` of ``image.convert('RGB')``
    (the critic's CLIP tower and preprocessing stand in for CLIPModel/CLIPProcessor)."""
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0)
    with torch.no_grad():
        features = critic.visual(critic.preprocess(pixels.permute(2, 0, 1)[None]))
        return torch.softmax(critic.head(features), dim=1)[0]


def _reference_emo_cls(critic, paths_and_labels):
    """EmoGen's emo_cls accumulation: acc/score for 8 and 2 classes, and per emotion."""
    emo, emo_num, emo_score = [0] * 8, [0] * 8, [0.0] * 8
    acc_8 = acc_2 = 0
    score_8 = score_2 = 0.0
    for path, label in paths_and_labels:
        with Image.open(path) as image:
            p_8 = _reference_probabilities(critic, image)
        y8 = UPSTREAM_ORDER.index(label)
        y2 = 0 if y8 < 4 else 1
        p_2 = p_8.reshape(2, 4).sum(dim=1)
        correct = int(int(torch.argmax(p_8)) == y8)
        acc_8 += correct
        acc_2 += int(int(torch.argmax(p_2)) == y2)
        score_8 += float(p_8[y8])
        score_2 += float(p_2[y2])
        emo[y8] += correct
        emo_num[y8] += 1
        emo_score[y8] += float(p_8[y8])
    n = len(paths_and_labels)
    per = {UPSTREAM_ORDER[i]: (emo[i] / emo_num[i] * 100, emo_score[i] / emo_num[i]) for i in range(8) if emo_num[i]}
    return {"acc_8": acc_8 / n * 100, "score_8": score_8 / n, "acc_2": acc_2 / n * 100, "score_2": score_2 / n,
            "per_emotion": per}


def test_emogen_emo_a_matches_emo_cls(critics, tmp_path):
    tree = write_emotion_tree(tmp_path / "tree", ("amusement", "awe", "fear", "sadness"), 3, broken=False)
    _eval([tree, "--critic", critics["critic_emogen"], "--out", tmp_path / "run", "--bootstrap", "0"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    critic = load_critic(critics["critic_emogen"])
    labelled = [(p, p.parent.name) for p in sorted(tree.rglob("*.*"))]
    reference = _reference_emo_cls(critic, labelled)
    ours = summary["overall"]["critics"]["test_emogen_probe"]
    assert abs(ours["emo_a"]["mean"] * 100 - reference["acc_8"]) < TOLERANCE
    assert abs(ours["emo_score"]["mean"] - reference["score_8"]) < TOLERANCE
    assert abs(ours["emo_a_2class"]["mean"] * 100 - reference["acc_2"]) < TOLERANCE
    assert abs(ours["emo_score_2class"]["mean"] - reference["score_2"]) < TOLERANCE
    for emotion, (accuracy, score) in reference["per_emotion"].items():
        stats = summary["per_emotion"][emotion]["critics"]["test_emogen_probe"]
        assert abs(stats["emo_a"]["mean"] * 100 - accuracy) < TOLERANCE
        assert abs(stats["emo_score"]["mean"] - score) < TOLERANCE
    assert reference["score_8"] > 0 and 0 < reference["acc_2"], "the check compares non-trivial numbers"


def _crop_img(image: Image.Image, size=(512, 512)) -> Image.Image:
    """EmoEdit's crop_img: centred square by integer arithmetic, then PIL's default resize."""
    width, height = image.size
    side = min(width, height)
    box = ((width - side) // 2, (height - side) // 2, (width + side) // 2, (height + side) // 2)
    return image.crop(box).resize(size)


@pytest.fixture(scope="module")
def edit_run(critics, tmp_path_factory):
    root = tmp_path_factory.mktemp("edit_parity")
    manifest = write_edit_manifest(root / "data", 4)
    _eval([manifest, "--critic", critics["critic_emoedit"], "--critic", critics["critic_emoeditor"],
           "--out", root / "run", "--bootstrap", "0"])
    rows = [json.loads(line) for line in (root / "run" / "rows.jsonl").read_text().splitlines()]
    return root / "data", rows


def test_emoedit_ssim_matches_skimage(edit_run):
    from skimage.metrics import structural_similarity

    data, rows = edit_run
    for row in rows:
        with Image.open(data / row["image"]) as test_img, Image.open(row["source"]) as origin_img:
            origin = np.array(_crop_img(origin_img))
            test = np.array(test_img.resize((512, 512)))
        expected = structural_similarity(test, origin, channel_axis=2)
        assert abs(row["ssim_emoedit"] - expected) < TOLERANCE, row["image"]
        assert 0.05 < expected < 0.99, "a pair that is neither unrelated nor identical"


def test_emoedit_emo_s_matches_count_emo_s(edit_run, critics):
    data, rows = edit_run
    critic = load_critic(critics["critic_emoedit"])
    for row in rows:
        with Image.open(data / row["image"]) as test_img, Image.open(row["source"]) as origin_img:
            origin, test = _crop_img(origin_img), test_img.resize((512, 512))
            index = UPSTREAM_ORDER.index(row["target"])
            expected = float(_reference_probabilities(critic, test)[index]
                             - _reference_probabilities(critic, origin)[index])
        assert abs(row["critics"]["test_emoedit_probe"]["emo_s"] - expected) < TOLERANCE, row["image"]


def test_esmi_and_emoeditor_gate_are_the_projects_implementations(edit_run, critics):
    from emotion_core.images import load_image
    from emotion_core.metrics.esmi import esmi
    from emotion_core.ssim import ssim

    data, rows = edit_run
    critic = load_critic(critics["critic_emoeditor"])
    for row in rows:
        image, source = data / row["image"], row["source"]
        expected = esmi(critic, source, str(image), row["target"])
        assert row["critics"]["test_emoeditor_predictor"]["esmi"] == pytest.approx(float(expected.esmi[0]), abs=1e-9)
        gate = float(ssim(load_image(source), load_image(image), mode="emoeditor")[0])
        assert row["ssim_emoeditor"] == pytest.approx(gate, abs=1e-9)


def test_emoedit_ssim_of_rgba_and_odd_sizes(tmp_path):
    """The same skimage value for a 4-channel edit (converted to RGB after the resize, as the
    script's Emo-S path does) and a portrait source whose crop is off-centre by rounding."""
    from skimage.metrics import structural_similarity

    from emotion_core.metrics.emoedit import emoedit_pair, emoedit_ssim

    source = noise_image(tmp_path / "src.jpg", (75, 50), 7)
    rgb = noise_image(tmp_path / "edit.png", (33, 47), 8)
    with Image.open(rgb) as image:
        image.convert("RGBA").save(tmp_path / "edit_rgba.png")
    for edit in (rgb, tmp_path / "edit_rgba.png"):
        ours = emoedit_ssim(*emoedit_pair(edit, source))
        with Image.open(edit) as test_img, Image.open(source) as origin_img:
            expected = structural_similarity(np.array(test_img.resize((512, 512)).convert("RGB")),
                                             np.array(_crop_img(origin_img)), channel_axis=2)
        assert abs(ours - expected) < TOLERANCE


def test_clip_score_and_clip_i_follow_their_definitions(critics, tmp_path):
    """CLIP-score = 100 max(cos, 0) of the prompt and image embeddings (torchmetrics' CLIPScore),
    CLIP-I = cos of the edit's and source's image embeddings on EmoEdit's pair, with an open_clip
    model built here directly from the file."""
    import open_clip

    from emotion_core.critics.clip_backbone import make_preprocess, make_tokenizer
    from emotion_core.images import load_image
    from emotion_core.weights import load_state_dict, read_metadata

    manifest = write_edit_manifest(tmp_path / "data", 2)
    lines = [json.loads(line) for line in manifest.read_text().splitlines()]
    lines[0]["prompt"] = "a boat on a grey sea"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in lines))
    clip_file = critics["critic_clip_b32"]
    _eval([manifest, "--critic", critics["critic_emoedit"], "--clip-model", clip_file, "--out", tmp_path / "run",
           "--bootstrap", "0"])
    rows = [json.loads(line) for line in (tmp_path / "run" / "rows.jsonl").read_text().splitlines()]

    meta = read_metadata(clip_file)
    model = open_clip.model.CLIP(**meta["open_clip_config"])
    model.load_state_dict({k: v for k, v in load_state_dict(clip_file).items()}, strict=False)
    model.eval()
    preprocess = make_preprocess(meta["open_clip_config"], clip_file, meta)

    def embed(image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return torch.nn.functional.normalize(model.encode_image(preprocess(image.permute(0, 3, 1, 2))), dim=-1)[0]

    with torch.no_grad():
        text = torch.nn.functional.normalize(model.encode_text(make_tokenizer(77)([lines[0]["prompt"]])), dim=-1)[0]
    expected = 100 * max(float(embed(load_image(tmp_path / "data" / rows[0]["image"])) @ text), 0.0)
    assert abs(rows[0]["clip_score"] - expected) < TOLERANCE
    assert "clip_score" not in rows[1], "no prompt, no CLIP-score"
    for row in rows:
        with Image.open(tmp_path / "data" / row["image"]) as test_img, Image.open(row["source"]) as origin_img:
            test = torch.from_numpy(np.array(test_img.resize((512, 512)).convert("RGB"))).float()[None] / 255
            origin = torch.from_numpy(np.array(_crop_img(origin_img).convert("RGB"))).float()[None] / 255
        assert abs(row["clip_i"] - float(embed(test) @ embed(origin))) < TOLERANCE
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["overall"]["clip_score"]["n"] == 1 and summary["overall"]["clip_i"]["n"] == 2
    assert set(summary["metrics_not_run"]) == {"fid", "lpips"}


def test_score_against_also_reports_emoedits_ssim(critics, tmp_path, capsys):
    """``score --against`` (a few images) gives the same EmoEdit SSIM as ``eval`` and skimage."""
    from skimage.metrics import structural_similarity

    source = noise_image(tmp_path / "src.jpg", (60, 80), 21)
    edit = noise_image(tmp_path / "edit.png", (64, 64), 22)
    assert main(["score", str(edit), "--critic", str(critics["critic_emoedit"]), "--target", "awe", "--against",
                 str(source), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    with Image.open(edit) as test_img, Image.open(source) as origin_img:
        expected = structural_similarity(np.array(test_img.resize((512, 512))), np.array(_crop_img(origin_img)),
                                         channel_axis=2)
    assert abs(row["ssim_emoedit"] - expected) < TOLERANCE and "ssim" in row and "ssim_emoeditor" in row
