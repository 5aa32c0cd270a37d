"""``emotion-director generate`` end to end on the tiny diffusers pipeline: PNGs with run
metadata, JSON lines, overwrite refusal, img2img, visual prompts, bad input -> exit 2."""

import json

import numpy as np
import pytest
from PIL import Image

from emotion_core.cli import main
from emotion_core.cli.arguments import VisualPromptArg
from emotion_core.report import PNG_METADATA_KEY


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def assets(tiny_sd_pipeline):
    return tiny_sd_pipeline


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    paths = {}
    for name, (h, w) in {"calm": (48, 72), "storm": (64, 64), "odd": (50, 50)}.items():
        paths[name] = folder / f"{name}.png"
        Image.fromarray((rng.random((h, w, 3)) * 255).astype("uint8")).save(paths[name])
    return paths


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _base(assets, out, *extra):
    return ["generate", "--model", assets["pipeline"], "--emotion", "Awe", "--prompt", "a mountain at dawn",
            "--steps", "2", "--out", out, *extra]


def _png_metadata(path):
    with Image.open(path) as image:
        return json.loads(image.text[PNG_METADATA_KEY])


def test_generate_writes_pngs_with_metadata_and_json_lines(capsys, assets, tmp_path):
    out = tmp_path / "out"
    code, stdout, _ = run(capsys, *_base(assets, out, "--batch", "2", "--seed", "7", "--cfg", "4",
                                         "--negative-prompt", "blurry", "--json"))
    assert code == 0
    lines = [json.loads(line) for line in stdout.splitlines()]
    assert [line["seed"] for line in lines] == [7, 8]
    assert [line["image"] for line in lines] == [str(out / "awe_7.png"), str(out / "awe_8.png")]
    for line in lines:
        meta = _png_metadata(line["image"])
        assert meta == {k: v for k, v in line.items() if k != "image"}
        assert meta["emotion"] == "awe" and meta["prompt"] == "a mountain at dawn"
        assert meta["negative_prompt"] == "blurry" and meta["steps"] == 2 and meta["cfg"] == 4.0
        assert (meta["width"], meta["height"]) == (64, 64) and meta["model"] == "pipe"
        assert str(tmp_path) not in json.dumps(meta)  # names only, no paths
        with Image.open(line["image"]) as image:
            assert image.size == (64, 64) and image.mode == "RGB"
    # same seed again (alone) -> the same pixels as image 7 of the batch
    code, stdout, _ = run(capsys, *_base(assets, tmp_path / "again.png", "--seed", "8", "--cfg", "4",
                                         "--negative-prompt", "blurry", "--json"))
    assert code == 0 and json.loads(stdout)["image"] == str(tmp_path / "again.png")
    a, b = (np.asarray(Image.open(p), dtype=int) for p in (out / "awe_8.png", tmp_path / "again.png"))
    assert np.abs(a - b).max() <= 1


def test_existing_output_is_refused_unless_overwrite(capsys, assets, tmp_path):
    target = tmp_path / "image.png"
    target.write_bytes(b"keep me")
    code, stdout, err = run(capsys, *_base(assets, target))
    assert code == 2 and stdout == "" and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert target.read_bytes() == b"keep me"
    code, stdout, _ = run(capsys, *_base(assets, target, "--overwrite"))
    assert code == 0 and _png_metadata(target)["seed"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["image.png"]  # no temp files left


def test_visual_prompts_and_img2img(capsys, assets, images, tmp_path):
    out = tmp_path / "vp.png"
    code, stdout, _ = run(capsys, *_base(
        assets, out, "--visual-prompt", f"{images['calm']}:0.5", images["odd"], "--visual-weight", "1.5",
        "--adapter", assets["adapter_plus"], "--image-encoder", assets["image_encoder"],
        "--init-image", images["storm"], "--denoise", "0.5", "--scheduler", "euler", "--json"))
    assert code == 0
    meta = json.loads(stdout)
    assert meta["visual_prompts"] == [{"image": "calm.png", "weight": 0.5}, {"image": "odd.png", "weight": 1.0}]
    assert meta["visual_weight"] == 1.5 and meta["adapter"] == "test_ip_adapter_plus.safetensors"
    assert meta["init_image"] == "storm.png" and meta["denoise"] == 0.5
    assert meta["scheduler"] == "EulerDiscreteScheduler"
    assert _png_metadata(out) == {k: v for k, v in meta.items() if k != "image"}


def test_init_image_is_resized_to_the_requested_size(capsys, assets, images, tmp_path):
    out = tmp_path / "resized.png"
    code, stdout, _ = run(capsys, *_base(assets, out, "--init-image", images["calm"], "--width", "32",
                                         "--height", "24", "--json"))
    assert code == 0 and json.loads(stdout)["denoise"] == 0.75
    with Image.open(out) as image:
        assert image.size == (32, 24)


def test_emotion_strength_steers_the_prompt(capsys, assets, tmp_path):
    """Strength 0 is the plain prompt; a strength moves the image, more for more; the
    emotion itself matters (same seed, same prompt)."""
    pixels = {}
    for name, emotion, strength in (("off", "awe", "0"), ("awe", "awe", "1"), ("awe2", "awe", "2"),
                                    ("fear", "fear", "1")):
        code, _, err = run(capsys, *_base(assets, tmp_path / f"{name}.png", "--emotion", emotion,
                                          "--strength", strength, "--cfg", "3"))
        assert code == 0, err
        pixels[name] = np.asarray(Image.open(tmp_path / f"{name}.png"), dtype=np.float32)
        assert _png_metadata(tmp_path / f"{name}.png")["strength"] == float(strength)
    moved = {name: np.abs(pixels[name] - pixels["off"]).mean() for name in ("awe", "awe2", "fear")}
    assert 0 < moved["awe"] < moved["awe2"]
    assert np.abs(pixels["awe"] - pixels["fear"]).mean() > 0


def test_visual_prompt_argument_parsing():
    assert VisualPromptArg.parse("a.png:0.3") == VisualPromptArg.parse("a.png:.3")
    assert VisualPromptArg.parse("a.png").weight == 1.0
    assert str(VisualPromptArg.parse(r"C:\images\a.png").path) == r"C:\images\a.png"


@pytest.mark.parametrize("extra, needle", [
    (["--emotion", "joy"], "unknown emotion 'joy'"),
    (["--width", "60"], "--width must be a multiple of 8"),
    (["--height", "0"], "--height must be a multiple of 8"),
    (["--steps", "0"], "positive integer"),
    (["--batch", "-1"], "positive integer"),
    (["--cfg", "nan"], "finite"),
    (["--cfg", "-1"], "--cfg: expected a finite number >= 0"),
    (["--seed", "x"], "integer seed"),
    (["--denoise", "0.5"], "--denoise needs --init-image"),
    (["--init-image", "missing.png"], "--init-image not found"),
    (["--visual-prompt", "missing.png"], "needs --adapter"),
    (["--adapter", "a.safetensors"], "only used with --visual-prompt"),
    (["--prompt", "  "], "--prompt is empty"),
    (["--scheduler", "lms"], "invalid choice"),
    (["--strength", "2.5"], "strength must be between 0.0 and 2.0"),
])
def test_bad_input_exits_2_with_one_line(capsys, assets, tmp_path, extra, needle):
    code, stdout, err = run(capsys, *_base(assets, tmp_path / "x.png"), *extra)
    assert code == 2 and stdout == ""
    assert needle in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


def test_bad_files_exit_2(capsys, assets, images, tmp_path):
    cases = [
        (["--model", tmp_path / "nope"], "--model not found"),
        (["--model", images["calm"]], "diffusers folder"),
        (["--model", tmp_path], "no model_index.json"),
        (["--out", tmp_path / "x.jpg"], "must be a .png file or a folder"),
        (["--init-image", images["odd"]], "multiples of 8"),
        (["--visual-prompt", images["calm"], "--adapter", assets["adapter_base"], "--image-encoder", tmp_path],
         "no config.json"),
        (["--visual-prompt", f"{images['calm']}:1.5", "--visual-weight", "1.5", "--adapter", assets["adapter_base"],
          "--image-encoder", assets["image_encoder"]], "weight x --visual-weight must be between 0.0 and 2.0"),
        (["--visual-prompt", images["calm"], "--adapter", images["calm"], "--image-encoder", assets["image_encoder"]],
         "calm.png"),
    ]
    for extra, needle in cases:
        code, stdout, err = run(capsys, *_base(assets, tmp_path / "y.png"), *extra)
        assert code == 2 and stdout == "", (extra, err)
        assert needle in err and len(err.strip().splitlines()) == 1, (extra, err)
