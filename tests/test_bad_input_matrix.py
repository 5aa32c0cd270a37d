"""Bad input matrix: every node and every CLI command fed wrong types, wrong shapes, NaN/Inf,
out-of-range numbers, empty and 100k-character strings, unknown emotions, and missing,
truncated and wrong-format model files.

Each case must end in a clear error naming the input: ``InvalidInputError`` (ComfyUI shows
its text on the node) whose message contains the input's name, or, for the CLI, exit code 2
with one ``error:`` line on stderr naming the flag. Never another exception type, never a
result made of garbage. Inputs a node accepts by design (RGBA images, a 1-channel batch) are
checked for the documented behaviour instead. The per-feature tests cover each error's
wording; this one is the cross-cutting sweep. The number of cases is printed for the README.
"""

from __future__ import annotations

import asyncio
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from emotion_core.cli import COMMAND_MODULES, main
from emotion_core.testing.assets import TEST_FILES

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LONG = "x" * 100_000
NAN, INF = float("nan"), float("inf")
TRIED: dict[str, int] = {"node": 0, "cli": 0}


# --- files ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def files(comfy_models_dir, tmp_path_factory):
    """Good and bad files: images, and model files that are missing, truncated or not models."""
    root = tmp_path_factory.mktemp("bad_inputs")
    critic = comfy_models_dir / TEST_FILES["critic_emoedit"]
    paths = {"critic": critic, "models": comfy_models_dir, "missing": root / "missing.safetensors"}
    paths["truncated"] = root / "truncated.safetensors"
    paths["truncated"].write_bytes(critic.read_bytes()[:200])
    paths["text_model"] = root / "notes.safetensors"
    paths["text_model"].write_text("this is not a model\n")
    paths["empty_file"] = root / "empty.safetensors"
    paths["empty_file"].write_bytes(b"")
    paths["png_model"] = root / "image.safetensors"
    Image.new("RGB", (8, 8)).save(paths["png_model"], format="PNG")
    paths["image"] = root / "ok.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(paths["image"])
    paths["not_image"] = root / "not_image.png"
    paths["not_image"].write_text("plain text")
    paths["empty_image"] = root / "empty.png"
    paths["empty_image"].write_bytes(b"")
    paths["truncated_image"] = root / "truncated.png"
    paths["truncated_image"].write_bytes(paths["image"].read_bytes()[:60])
    paths["dir"] = root / "folder"
    paths["dir"].mkdir()
    paths["out"] = root / "out.png"
    paths["out_st"] = root / "out.safetensors"
    # models/ copies of the bad model files, for the node loaders' combos
    for folder in ("emotion_critic", "ipadapter", "emotion_encoder", "emotion_banks"):
        for kind in ("truncated", "text_model", "empty_file"):
            shutil.copy(paths[kind], comfy_models_dir / folder / f"bad_{kind}.safetensors")
    yield paths
    for folder in ("emotion_critic", "ipadapter", "emotion_encoder", "emotion_banks"):
        for kind in ("truncated", "text_model", "empty_file"):
            (comfy_models_dir / folder / f"bad_{kind}.safetensors").unlink(missing_ok=True)


# --- CLI ------------------------------------------------------------------------------------------------

# (argv, the flag or argument the error line must name). ``{name}`` fields come from ``files``.
CLI_CASES = [
    # rewrite
    (["rewrite", "a cat", "--emotion", "joy"], "emotion|joy"),
    (["rewrite", "a cat", "--emotion", ""], "emotion"),
    (["rewrite", "", "--emotion", "awe"], "prompt"),
    (["rewrite", LONG, "--emotion", "awe"], "prompt"),
    (["rewrite", "a cat", "--emotion", "awe", "--agents", "0"], "agents"),
    (["rewrite", "a cat", "--emotion", "awe", "--agents", "many"], "agents"),
    (["rewrite", "a cat", "--emotion", "awe", "--creativity", "nan"], "creativity"),
    (["rewrite", "a cat", "--emotion", "awe", "--creativity", "7"], "creativity"),
    (["rewrite", "a cat", "--emotion", "awe", "--token-budget", "0"], "token"),
    (["rewrite", "--emotion", "awe", "--prompts-file", "{missing}"], "prompts"),
    (["rewrite", "--emotion", "awe", "--prompts-file", "{dir}"], "prompts"),
    (["rewrite", "a cat", "--emotion", "awe", "--backend", "gpt"], "backend"),
    # score
    (["score", "{image}", "--critic", "{missing}"], "critic"),
    (["score", "{image}", "--critic", "{truncated}"], "critic"),
    (["score", "{image}", "--critic", "{text_model}"], "critic"),
    (["score", "{image}", "--critic", "{empty_file}"], "critic"),
    (["score", "{image}", "--critic", "{png_model}"], "critic"),
    (["score", "{missing}", "--critic", "{critic}"], "image"),
    (["score", "{not_image}", "--critic", "{critic}"], "image"),
    (["score", "{empty_image}", "--critic", "{critic}"], "image"),
    (["score", "{truncated_image}", "--critic", "{critic}"], "image"),
    (["score", "{dir}", "--critic", "{critic}"], "image"),
    (["score", "{image}", "--critic", "{critic}", "--batch-size", "0"], "batch"),
    (["score", "{image}", "--critic", "{critic}", "--target", "joy"], "target|joy"),
    (["score", "{image}", "--critic", "{critic}", "--against", "{not_image}"], "against"),
    # direction
    (["direction", "--target", "joy"], "target|joy"),
    (["direction", "--target", ""], "target|blend"),
    (["direction", "--target", LONG], "target|emotion"),
    (["direction", "--target", "awe:-1"], "target|awe"),
    (["direction", "--target", "awe:nan"], "target|awe"),
    (["direction", "--target", "awe:inf,fear:1"], "target|awe"),
    (["direction", "--target", "awe", "--strength", "5"], "strength"),
    (["direction", "--target", "awe", "--strength", "nan"], "strength"),
    (["direction", "--target", "awe", "--strength", "-inf"], "strength"),
    (["direction", "--target", "awe", "--source", "{image}"], "critic"),
    (["direction", "--target", "awe", "--source", "{not_image}", "--critic", "{critic}"], "source"),
    (["direction", "--target", "awe", "--source", "{image}", "--critic", "{truncated}"], "critic"),
    # generate
    (["generate", "--model", "{missing}", "--emotion", "awe", "--prompt", "a cat", "--out", "{out}"], "model"),
    (["generate", "--model", "{text_model}", "--emotion", "awe", "--prompt", "a cat", "--out", "{out}"], "model"),
    (["generate", "--model", "{missing}", "--emotion", "joy", "--prompt", "a cat", "--out", "{out}"], "emotion|joy"),
    (["generate", "--model", "{missing}", "--emotion", "awe", "--prompt", "a cat", "--out", "{out}", "--steps", "0"], "steps"),
    (["generate", "--model", "{missing}", "--emotion", "awe", "--prompt", "a cat", "--out", "{out}", "--width", "0"], "width"),
    (["generate", "--model", "{missing}", "--emotion", "awe", "--prompt", "a cat", "--out", "{out}", "--height", "100000"], "height"),
    (["generate", "--model", "{missing}", "--emotion", "awe", "--prompt", "a cat", "--out", "{out}", "--cfg", "nan"], "cfg"),
    (["generate", "--model", "{missing}", "--emotion", "awe", "--prompt", "a cat", "--out", "{out}", "--strength", "9"], "strength"),
    # edit
    (["edit", "{missing}", "--target", "awe", "--model", "{missing}", "--out", "{out}", "--critic", "{critic}"],
     "image"),
    (["edit", "{image}", "--target", "joy", "--model", "{missing}", "--out", "{out}", "--critic", "{critic}"],
     "target|joy"),
    (["edit", "{image}", "--target", "awe", "--model", "{missing}", "--out", "{out}", "--critic", "{critic}",
      "--ssim-min", "2"], "ssim"),
    (["edit", "{image}", "--target", "awe", "--model", "{missing}", "--out", "{out}", "--critic", "{critic}",
      "--max-iterations", "0"], "max-iterations|max_iterations"),
    (["edit", "{image}", "--target", "awe", "--model", "{missing}", "--out", "{out}", "--critic", "{critic}",
      "--candidates", "0"], "candidates"),
    (["edit", "{image}", "--target", "awe", "--model", "{missing}", "--out", "{out}", "--critic", "{critic}",
      "--confidence", "nan"], "confidence"),
    (["edit", "{image}", "--target", "awe", "--model", "{missing}", "--out", "{out}", "--critic", "{truncated}"],
     "critic"),
    # bank build
    (["bank", "build", "--images", "{missing}", "--clip", "{critic}", "--out", "{out_st}"], "images"),
    (["bank", "build", "--images", "{dir}", "--clip", "{missing}", "--out", "{out_st}"], "clip"),
    (["bank", "build", "--images", "{dir}", "--clip", "{critic}", "--out", "{out_st}", "--clusters", "0"], "clusters"),
    # train-dpo
    (["train-dpo", "--data", "{missing}", "--base", "{missing}", "--adapter", "{critic}", "--out", "{out_st}"], "data"),
    (["train-dpo", "--data", "{dir}", "--base", "{missing}", "--adapter", "{critic}", "--out", "{out_st}",
      "--steps", "0"], "steps"),
    (["train-dpo", "--data", "{dir}", "--base", "{missing}", "--adapter", "{critic}", "--out", "{out_st}",
      "--beta", "nan"], "beta"),
    (["train-dpo", "--data", "{dir}", "--base", "{missing}", "--adapter", "{critic}", "--out", "{out_st}",
      "--lr", "-1"], "lr"),
    # convert
    (["convert", "{missing}", "{out_st}"], "IN"),
    (["convert", "{truncated}", "{out_st}"], "IN"),
    (["convert", "{text_model}", "{out_st}"], "IN"),
    (["convert", "{empty_file}", "{out_st}"], "IN"),
    # bench, dev
    (["bench", "nothing"], "NAME"),
    (["bench", "rewrite", "--prompts", "0"], "prompts"),
    (["dev", "make-test-models"], "DIR"),
    (["dev", "make-test-models", "{text_model}"], "DIR"),
]


def test_every_cli_command_is_in_the_matrix():
    covered = {argv[0].replace("-", "_") for argv, _ in CLI_CASES}
    assert covered == set(COMMAND_MODULES)


@pytest.mark.parametrize("argv, names", CLI_CASES, ids=lambda v: " ".join(v)[:60] if isinstance(v, list) else v)
def test_cli_bad_input_exits_2_with_one_line_naming_the_flag(argv, names, files, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [a.format(**files) if a.startswith("{") else a for a in argv]
    TRIED["cli"] += 1
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert code == 2, f"exit {code}: {captured.err[-800:]}"
    assert len(errors) == 1 and len(errors[0]) < 2000, captured.err[-800:]
    # named by its flag (or dest), its value, or its file
    fragments = [*names.split("|"), *(os.path.basename(str(a)) for a in argv if os.sep in str(a))]
    assert any(f.lower() in errors[0].lower() for f in fragments if f), errors[0]
    assert not captured.out.strip(), "no result on stdout after bad input"
    assert "Traceback" not in captured.err
