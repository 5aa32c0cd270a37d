"""``emotion-director generate --critic-loop`` on the tiny diffusers pipeline and a tiny critic:
text-to-image passes until a candidate is accepted, SDEdit refinement of it after, img2img judged
against the init image, the best PNG + report, reproducibility, bad input -> exit 2."""

import json

import numpy as np
import pytest
from PIL import Image

from emotion_core.cli import main
from emotion_core.report import PNG_METADATA_KEY

# the tiny random critic's top-1 for the tiny pipeline's images: passes get accepted and refined
ACCEPTED_EMOTION = "disgust"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def files(critic_loop_files):
    return {**critic_loop_files, "init": critic_loop_files["image"]}


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _loop(files, out, *extra):
    return ["generate", "--model", files["pipeline"], "--emotion", ACCEPTED_EMOTION, "--prompt", "a mountain at dawn",
            "--steps", "4", "--width", "32", "--height", "32", "--out", out, "--critic-loop", "--critic",
            files["critic"], "--max-iterations", "3", "--candidates", "2", "--confidence", "1", "--json", *extra]


def _png(path):
    with Image.open(path) as image:
        return np.asarray(image), json.loads(image.text[PNG_METADATA_KEY])


def test_text_to_image_loop_writes_the_best_and_the_report(capsys, files, tmp_path):
    out, report_path = tmp_path / "best.png", tmp_path / "report.json"
    code, stdout, err = run(capsys, *_loop(files, out, "--report", report_path))
    assert code == 0, err
    result = json.loads(stdout)
    pixels, meta = _png(out)
    assert pixels.shape == (32, 32, 3)
    assert meta == {k: v for k, v in result.items() if k not in ("image", "report")}
    assert result["image"] == str(out) and result["report"] == str(report_path)
    assert "denoise" not in meta, "each pass draws its own denoise"
    assert str(tmp_path) not in json.dumps(meta) and meta["critic_loop"]["critic"] == files["critic"].name

    report = json.loads(report_path.read_text())
    loop = meta["critic_loop"]
    assert loop["iterations"] == report["passes"] == len(report["iterations"]) <= 3
    assert loop["settings"] == report["settings"] and report["settings"]["max_iterations"] == 3
    assert loop["best"] == report["best"]["index"] and loop["pick"] == report["best"]["pick"]
    assert loop["target_probability"] == report["best"]["target_probability"]
    first = report["iterations"][0]
    assert first["denoise"] == 1.0 and first["base"] is None, "the first pass is plain text-to-image"
    for it in report["iterations"]:
        assert len(it["candidates"]) == 2 and all(c["ssim"] is None for c in it["candidates"]), "no source, no SSIM"
        # text-to-image until a candidate is accepted; then SDEdit of it at a drawn denoise
        assert (it["base"] is None) == (it["denoise"] == 1.0)
        if it["base"] is not None:
            assert 0.55 <= it["denoise"] <= 0.85
    refined = [it for it in report["iterations"] if it["base"] is not None]
    assert refined, f"the tiny critic should accept {ACCEPTED_EMOTION} and the loop refine it"
    earlier = {c["index"]: c for it in report["iterations"] for c in it["candidates"]}
    assert all(earlier[it["base"]]["accepted"] for it in refined), "only an accepted candidate is refined"

    again = tmp_path / "again.png"
    code, stdout, _ = run(capsys, *_loop(files, again, "--report", tmp_path / "again.json"))
    assert code == 0
    assert np.array_equal(_png(again)[0], pixels), "same seed, same image"
    assert json.loads((tmp_path / "again.json").read_text()) == report, "same seed, same run"


def test_img2img_loop_is_judged_against_the_init_image(capsys, files, tmp_path):
    out = tmp_path / "folder"
    code, stdout, err = run(capsys, *_loop(files, out, "--init-image", files["init"], "--ssim-min", "0",
                                           "--ssim-max", "1", "--max-iterations", "2", "--candidates", "1"))
    assert code == 0, err
    result = json.loads(stdout)
    assert result["image"] == str(out / f"{ACCEPTED_EMOTION}_0.png"), "a folder --out: EMOTION_SEED.png of the run"
    _, meta = _png(result["image"])
    assert meta["init_image"] == files["init"].name and "denoise" not in meta and result["report"] is None
    assert meta["critic_loop"]["iterations"] <= 2 and meta["critic_loop"]["ssim"] is not None
    assert 0.55 <= meta["critic_loop"]["best_denoise"] <= 0.85, "every pass SDEdits (the init image first)"


def test_loop_keeps_negative_visual_guidance(capsys, files, tmp_path):
    """The loop samples with the same branches, guidance and visual prompt patches as one call."""
    out = tmp_path / "nv.png"
    code, stdout, err = run(capsys, *_loop(files, out, "--visual-prompt", files["init"], "--adapter",
                                           files["adapter_base"], "--image-encoder", files["image_encoder"],
                                           "--negative-visual-prompt", files["init"], "--max-iterations", "1",
                                           "--candidates", "1"))
    assert code == 0, err
    meta = json.loads(stdout)
    assert meta["negative_visual_prompts"] == [files["init"].name] and meta["critic_loop"]["iterations"] == 1


@pytest.mark.parametrize("extra, needle", [
    (["--ssim-min", "0.9", "--ssim-max", "0.1"], "ssim_low (0.9) must not be above ssim_high"),
    (["--denoise-min", "0.9", "--denoise-max", "0.5"], "denoise_low (0.9) must not be above denoise_high"),
    (["--confidence", "1.5"], "confidence must be between 0 and 1"),
    (["--confidence", "high"], "expected a number between 0 and 1"),
    (["--max-iterations", "0"], "max_iterations must be a whole number from 1"),
    (["--candidates", "0"], "candidates must be a whole number from 1"),
    (["--rule", "xor"], "invalid choice"),
    (["--batch", "2"], "use --candidates N"),
    (["--init-image", "INIT", "--denoise", "0.5"], "drop --denoise"),
    (["--critic", "missing.safetensors"], "--critic not found"),
])
def test_bad_loop_input_exits_2_with_one_line(capsys, files, tmp_path, extra, needle):
    extra = [files["init"] if item == "INIT" else item for item in extra]
    code, stdout, err = run(capsys, *_loop(files, tmp_path / "x.png"), *extra)
    assert code == 2 and stdout == ""
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("argv, needle", [
    (["--critic-loop"], "--critic-loop needs --critic FILE"),
    (["--critic", "c.safetensors"], "--critic is only used with --critic-loop"),
    (["--max-iterations", "3"], "--max-iterations is only used with --critic-loop"),
    (["--report", "r.json"], "--report is only used with --critic-loop"),
])
def test_loop_options_need_each_other(capsys, files, tmp_path, argv, needle):
    code, stdout, err = run(capsys, "generate", "--model", files["pipeline"], "--emotion", "awe", "--prompt", "a lake",
                            "--out", tmp_path / "x.png", *argv)
    assert code == 2 and stdout == "" and needle in err and len(err.strip().splitlines()) == 1, err


def test_an_existing_report_is_refused_before_any_pass(capsys, files, tmp_path):
    report = tmp_path / "report.json"
    report.write_text("keep me")
    code, stdout, err = run(capsys, *_loop(files, tmp_path / "x.png", "--report", report))
    assert code == 2 and "report.json exists" in err and report.read_text() == "keep me"
    assert not (tmp_path / "x.png").exists()
