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

COMFYUI = bool(os.environ.get("COMFYUI_PATH"))
stand_in_nodes = pytest.mark.skipif(COMFYUI, reason="node inputs are tiny stand-ins (sampling needs them without "
                                    "ComfyUI); the CLI half runs everywhere")

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
    (["rewrite", "a cat", "--emotion", "awe", "--seed", "-1"], "seed"),
    (["rewrite", "a cat", "--emotion", "awe", "--timeout", "0"], "timeout"),
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
    (["edit", "{image}", "--target", "awe", "--model", "{missing}", "--out", "{out}", "--critic", "{critic}",
      "--cfg", "-1"], "cfg"),
    (["edit", "{image}", "--target", "awe", "--model", "{missing}", "--out", "{out}", "--critic", "{critic}",
      "--strength", "inf"], "strength"),
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
    # eval
    (["eval", "score", "{missing}", "--critic", "{critic}", "--out", "{out}"], "not found"),
    (["eval", "score", "{dir}", "--critic", "{critic}", "--out", "{out}", "--workers", "-1"], "workers"),
    (["eval", "score", "{dir}", "--critic", "{critic}", "--out", "{out}", "--split", "dev"], "split"),
    (["eval", "generate", "--model", "{missing}", "--prompts", "{missing}", "--critic", "{critic}", "--out", "{out}"],
     "prompts"),
    (["eval", "edit", "--sources", "{missing}", "--model", "{missing}", "--critic", "{critic}", "--out", "{out}"],
     "sources"),
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


# --- nodes ----------------------------------------------------------------------------------------------

IMAGE = torch.rand(1, 32, 32, 3, generator=torch.Generator().manual_seed(0))


def _image(*shape, fill=None):
    return torch.full(shape, fill) if fill is not None else torch.rand(*shape, generator=torch.Generator().manual_seed(1))


# Wrong IMAGE values every image input must refuse (name, value).
BAD_IMAGES = [
    ("string", "harbour.png"),
    ("list", [[0.5]]),
    ("5 channels", _image(1, 32, 32, 5)),
    ("zero batch", _image(0, 32, 32, 3)),
    ("zero height", _image(1, 0, 32, 3)),
    ("huge", _image(1, 1, 100_000, 3)),
    ("NaN", _image(1, 32, 32, 3, fill=NAN)),
    ("Inf", _image(1, 32, 32, 3, fill=INF)),
]
# node id -> its IMAGE inputs (each gets every BAD_IMAGES value)
IMAGE_INPUTS = {
    "EmotionDirection": ["source_image"],
    "VisualPromptInjector": ["image", "negative_image"],
    "EmotionPreferenceCollector": ["chosen", "rejected"],
    "EmotionCriticLoop": ["source_image"],
    "EmotionSaveImage": ["images"],
}
BAD_MODEL_FILES = ["missing.safetensors", "bad_truncated.safetensors", "bad_text_model.safetensors",
                   "bad_empty_file.safetensors", "../outside.safetensors", "", LONG]
FILE_INPUTS = {"EmotionCriticLoader": "critic_name", "VisualPromptAdapterLoader": "adapter_name",
               "EmotionVisualPromptBank": "bank_name", "EmotionConditioning": "emotion_encoder",
               "EmotionReduxPrompt": "bank_name"}

# (node id, overrides, names the error may use for the input: "a|b")
NODE_CASES = [
    *[(node, {name: value}, f"{name}|{name.rsplit('_', 1)[-1]}:") for node, names in IMAGE_INPUTS.items()
      for name in names
      for _label, value in BAD_IMAGES],
    *[(node, {name: value}, f"{name}|{os.path.basename(value)[:40] or chr(39) * 2}")
      for node, name in FILE_INPUTS.items() for value in BAD_MODEL_FILES
      if (name, value) != ("emotion_encoder", "")],  # empty = 'none' (the CLIP path), as documented
    # EmotionDirection
    ("EmotionDirection", {"target_emotion": "joy"}, "joy"),
    ("EmotionDirection", {"target_emotion": 3}, "emotion"),
    ("EmotionDirection", {"strength": NAN}, "strength"),
    ("EmotionDirection", {"strength": INF}, "strength"),
    ("EmotionDirection", {"strength": 5.0}, "strength"),
    ("EmotionDirection", {"strength": "1"}, "strength"),
    ("EmotionDirection", {"blend": "joy:1"}, "joy"),
    ("EmotionDirection", {"blend": LONG}, "emotion"),
    ("EmotionDirection", {"blend": "awe:nan"}, "awe"),
    ("EmotionDirection", {"blend": "awe:-2, fear:1"}, "awe"),
    ("EmotionDirection", {"source_image": IMAGE, "critic": None}, "critic"),
    ("EmotionDirection", {"source_image": IMAGE, "critic": "test_emoedit_probe.safetensors"}, "critic"),
    # EmotionConditioning
    ("EmotionConditioning", {"direction": "awe"}, "direction"),
    ("EmotionConditioning", {"direction": None}, "direction"),
    ("EmotionConditioning", {"clip": None}, "clip"),
    ("EmotionConditioning", {"conditioning": None}, "conditioning"),
    ("EmotionConditioning", {"conditioning": "a cat"}, "conditioning"),
    ("EmotionConditioning", {"conditioning": []}, "conditioning"),
    # VisualPromptInjector
    ("VisualPromptInjector", {"weight": NAN}, "weight"),
    ("VisualPromptInjector", {"weight": 1e9}, "weight"),
    ("VisualPromptInjector", {"weight_schedule": "bogus"}, "weight_schedule|schedule"),
    ("VisualPromptInjector", {"weight_schedule": LONG}, "weight_schedule|schedule"),
    ("VisualPromptInjector", {"start_percent": 2.0}, "start_percent"),
    ("VisualPromptInjector", {"start_percent": 0.8, "end_percent": 0.2}, "start_percent|end_percent"),
    ("VisualPromptInjector", {"end_percent": NAN}, "end_percent"),
    ("VisualPromptInjector", {"image_combine": "bogus"}, "image_combine|combine"),
    ("VisualPromptInjector", {"adapter": "test_ip_adapter_sd15.safetensors"}, "adapter"),
    ("VisualPromptInjector", {"clip_vision": None}, "clip_vision"),
    # EmotionVisualPromptBank
    ("EmotionVisualPromptBank", {"emotion": "joy"}, "joy"),
    ("EmotionVisualPromptBank", {"negative_emotion": "joy"}, "joy"),
    ("EmotionVisualPromptBank", {"top_k": 0}, "top_k"),
    ("EmotionVisualPromptBank", {"top_k": 10**6}, "top_k"),
    ("EmotionVisualPromptBank", {"combine": "bogus"}, "combine"),
    ("EmotionVisualPromptBank", {"adapter": "test_ip_adapter_sd15.safetensors"}, "adapter"),
    ("EmotionVisualPromptBank", {"text": 42}, "text"),
    # EmotionReduxPrompt
    ("EmotionReduxPrompt", {"emotion": "joy"}, "joy"),
    ("EmotionReduxPrompt", {"negative_emotion": "joy"}, "joy"),
    ("EmotionReduxPrompt", {"top_k": 0}, "top_k"),
    ("EmotionReduxPrompt", {"combine": "bogus"}, "combine"),
    ("EmotionReduxPrompt", {"text": 42}, "text"),
    # AgentPromptRewriter
    ("AgentPromptRewriter", {"prompt": ""}, "prompt"),
    ("AgentPromptRewriter", {"prompt": None}, "prompt"),
    ("AgentPromptRewriter", {"emotion": "joy"}, "joy"),
    ("AgentPromptRewriter", {"agents": 0}, "agents"),
    ("AgentPromptRewriter", {"agents": 10**6}, "agents"),
    ("AgentPromptRewriter", {"creativity": NAN}, "creativity"),
    ("AgentPromptRewriter", {"creativity": 3.0}, "creativity"),
    ("AgentPromptRewriter", {"token_budget": 0}, "token_budget|token budget"),
    ("AgentPromptRewriter", {"backend": "bogus"}, "backend"),
    ("AgentPromptRewriter", {"timeout": NAN}, "timeout"),
    ("AgentPromptRewriter", {"timeout": -1.0}, "timeout"),
    ("AgentPromptRewriter", {"emotion_direction": "awe"}, "emotion_direction|direction"),
    # Negative visual DPO sampler / guider
    *[(node, overrides, names) for node in ("NegativeVisualDPOSampler", "NegativeVisualDPOGuider")
      for overrides, names in [
          ({"visual_scale": NAN}, "visual_scale|visual guidance"),
          ({"visual_scale": 1e6}, "visual_scale|visual guidance"),
          ({"visual_schedule": "bogus"}, "visual_schedule"),
          ({"visual_weight": NAN}, "visual_weight"),
          ({"positive_visual_prompt": None}, "positive_visual_prompt"),
          ({"positive_visual_prompt": "awe"}, "positive_visual_prompt|visual prompt"),
          ({"positive": []}, "positive"),
          ({"negative": None}, "negative"),
          ({"adapter": "test_ip_adapter_sd15.safetensors"}, "adapter"),
          ({"cfg": NAN}, "cfg"),
      ]],
    ("NegativeVisualDPOSampler", {"latent_image": {"samples": "x"}}, "latent_image|latent"),
    ("NegativeVisualDPOSampler", {"latent_image": {"samples": torch.zeros(2, 4, 8, 8)},
                                  "positive": [[torch.zeros(3, 77, 32), {}]]}, "positive"),
    ("NegativeVisualDPOSampler", {"latent_image": {"samples": torch.full((1, 4, 8, 8), NAN)}}, "latent_image|latent"),
    ("NegativeVisualDPOSampler", {"steps": 0}, "steps"),
    ("NegativeVisualDPOSampler", {"denoise": 2.0}, "denoise"),
    # combos listed from ComfyUI's own lists: ComfyUI does not check V3 combos
    ("NegativeVisualDPOSampler", {"sampler_name": "sample_bogus"}, "sampler_name"),
    ("NegativeVisualDPOSampler", {"scheduler": "bogus"}, "scheduler"),
    # EmotionPreferenceCollector
    ("EmotionPreferenceCollector", {"chosen": _image(3, 32, 32, 3), "rejected": _image(2, 32, 32, 3)}, "rejected"),
    ("EmotionPreferenceCollector", {"target_emotion": "joy"}, "joy"),
    ("EmotionPreferenceCollector", {"negative_emotion": "joy"}, "joy"),
    ("EmotionPreferenceCollector", {"dataset": "../escape"}, "dataset"),
    ("EmotionPreferenceCollector", {"dataset": ""}, "dataset"),
    ("EmotionPreferenceCollector", {"dataset": LONG}, "dataset"),
    ("EmotionPreferenceCollector", {"prompt": None}, "prompt"),
    # EmotionCriticLoop
    ("EmotionCriticLoop", {"target_emotion": "joy"}, "joy"),
    ("EmotionCriticLoop", {"steps": 0}, "steps"),
    ("EmotionCriticLoop", {"cfg": NAN}, "cfg"),
    ("EmotionCriticLoop", {"denoise_min": NAN}, "denoise"),
    ("EmotionCriticLoop", {"denoise_min": 0.9, "denoise_max": 0.1}, "denoise"),
    ("EmotionCriticLoop", {"ssim_min": NAN}, "ssim"),
    ("EmotionCriticLoop", {"confidence": INF}, "confidence"),
    ("EmotionCriticLoop", {"max_iterations": 10**6}, "max_iterations"),
    ("EmotionCriticLoop", {"candidates_per_iteration": 0}, "candidates"),
    ("EmotionCriticLoop", {"rule": "xor"}, "rule"),
    ("EmotionCriticLoop", {"mode": "bogus"}, "mode"),
    ("EmotionCriticLoop", {"sampler_name": "sample_bogus"}, "sampler_name"),
    ("EmotionCriticLoop", {"scheduler": 7}, "scheduler"),
    ("EmotionCriticLoop", {"critic": "test_clip_b32_zero_shot.safetensors"}, "critic"),
    ("EmotionCriticLoop", {"positive": "a cat"}, "positive"),
    ("EmotionCriticLoop", {"source_image": None, "latent": {"samples": "x"}}, "latent"),
    ("EmotionCriticLoop", {"source_image": None, "latent": {"samples": torch.zeros(1, 4, 0, 4)}}, "latent"),
    # EmotionSaveImage
    ("EmotionSaveImage", {"filename_prefix": "../escape"}, "filename_prefix|prefix"),
    ("EmotionSaveImage", {"filename_prefix": LONG}, "filename_prefix|prefix"),
    ("EmotionSaveImage", {"report": "not json"}, "report"),
    ("EmotionSaveImage", {"report": LONG}, "report"),
    ("EmotionSaveImage", {"critic": "test_clip_b32_zero_shot.safetensors"}, "critic"),
    ("EmotionSaveImage", {"direction": "awe"}, "direction"),
    ("EmotionSaveImage", {"seed": -1}, "seed"),
]


@pytest.fixture(scope="module")
def node_classes(pack, comfy_models_dir):
    from emotion_director_pack.nodes import EmotionDirectorExtension

    return {cls.define_schema().node_id: cls for cls in asyncio.run(EmotionDirectorExtension().get_node_list())}


@pytest.fixture(scope="module")
def good_inputs(node_classes, files, tmp_path_factory):
    """Valid inputs for every node (tiny stand-ins); each case overrides some of them."""
    import folder_paths
    from comfy.model_patcher import ModelPatcher
    from comfy_standins.tiny_models import FakeClipVision, TinyComfyClip, TinyLatentModel, TinyModelPatcher, TinyVae

    saved = folder_paths.output_directory
    folder_paths.output_directory = str(tmp_path_factory.mktemp("output"))
    n = node_classes
    critic = n["EmotionCriticLoader"].execute(critic_name="test_clip_b32_zero_shot.safetensors").args[0]
    adapter = n["VisualPromptAdapterLoader"].execute(adapter_name="test_ip_adapter_sd15.safetensors").args[0]
    clip = TinyComfyClip()
    text = clip.encode_text("a harbour at dusk")
    direction = n["EmotionDirection"].execute(target_emotion="awe", strength=1.0).args[0]
    bank = dict(bank_name="test_emotion_bank.safetensors", adapter=adapter, emotion="awe", text="a harbour",
                top_k=2, combine="weighted", negative_emotion="none")
    visual = n["EmotionVisualPromptBank"].execute(**bank).args[0]
    negative_visual = n["EmotionVisualPromptBank"].execute(**{**bank, "emotion": "sadness"}).args[0]
    cpu = torch.device("cpu")
    dpo = dict(model=ModelPatcher(TinyLatentModel(), cpu, cpu), adapter=adapter, positive=text, negative=text,
               positive_visual_prompt=visual, negative_visual_prompt=negative_visual, cfg=7.0, visual_scale=2.0,
               visual_schedule="constant", visual_weight=0.8)
    yield {
        "EmotionCriticLoader": dict(critic_name="test_clip_b32_zero_shot.safetensors"),
        "EmotionDirection": dict(target_emotion="awe", strength=1.0, blend="", source_image=IMAGE, critic=critic),
        "EmotionConditioning": dict(direction=direction, conditioning=text, clip=clip, emotion_encoder="none"),
        "VisualPromptAdapterLoader": dict(adapter_name="test_ip_adapter_sd15.safetensors"),
        "VisualPromptInjector": dict(model=dpo["model"], adapter=adapter, weight=0.8, weight_schedule="uniform",
                                     start_percent=0.0, end_percent=1.0, image_combine="concat",
                                     clip_vision=FakeClipVision(), image=IMAGE, negative_image=IMAGE),
        "EmotionVisualPromptBank": bank,
        "EmotionReduxPrompt": dict(bank_name="test_emotion_bank_flux_redux.safetensors", emotion="awe",
                                   text="a harbour", top_k=2, combine="weighted", negative_emotion="sadness"),
        "AgentPromptRewriter": dict(prompt="a lighthouse", emotion="awe", agents=2, creativity=0.5, seed=0,
                                    backend="builtin", base_url="http://127.0.0.1:9/v1", model="", timeout=30.0,
                                    token_budget=77),
        "NegativeVisualDPOGuider": dpo,
        "NegativeVisualDPOSampler": {**dpo, "latent_image": {"samples": torch.zeros(1, 4, 8, 8)}, "seed": 0,
                                     "steps": 1, "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0},
        "EmotionPreferenceCollector": dict(chosen=IMAGE, rejected=IMAGE, prompt="a harbour", target_emotion="awe",
                                           negative_emotion="sadness", dataset="matrix",
                                           positive_visual_prompt=visual, negative_visual_prompt=negative_visual),
        "EmotionCriticLoop": dict(model=TinyModelPatcher(), positive=[[torch.full((1, 3, 8), 0.5), {}]],
                                  negative=[[torch.zeros(1, 3, 8), {}]], vae=TinyVae(), critic=critic,
                                  target_emotion="awe", seed=1, steps=2, cfg=2.0, sampler_name="euler",
                                  scheduler="normal", denoise_min=0.5, denoise_max=0.8, ssim_min=0.0, ssim_max=1.0,
                                  confidence=0.99, rule="and", max_iterations=1, candidates_per_iteration=1,
                                  source_image=IMAGE),
        "EmotionSaveImage": dict(images=IMAGE, filename_prefix="matrix", critic=critic, direction=direction),
    }
    folder_paths.output_directory = saved


# Nodes whose valid run needs a real ComfyUI sampler (the matrix only feeds them bad input).
NEEDS_COMFYUI = {"NegativeVisualDPOSampler", "NegativeVisualDPOGuider"}


@stand_in_nodes
def test_every_node_is_in_the_matrix(node_classes, good_inputs):
    assert set(node_classes) == set(good_inputs)
    assert set(node_classes) == {node for node, _, _ in NODE_CASES}


@stand_in_nodes
@pytest.mark.parametrize("node", sorted({n for n, _, _ in NODE_CASES} - NEEDS_COMFYUI))
def test_the_good_inputs_run(node, node_classes, good_inputs):
    """The baseline each case changes is valid, so a case's error comes from its bad input."""
    node_classes[node].execute(**good_inputs[node])


def _case_id(value):
    if isinstance(value, dict):
        return ",".join(f"{k}={_short(v)}" for k, v in value.items())
    return str(value)[:30]


def _short(value):
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_short(v)}" for k, v in value.items()) + "}"
    if isinstance(value, torch.Tensor):
        return f"{'x'.join(map(str, value.shape))}{'nan' if value.isnan().any() else ''}{'inf' if value.isinf().any() else ''}"
    return repr(value)[:20]


# Every gap found here has been fixed (nodes/input_checks.py re-checks each input against the
# node's schema); a new gap goes here as a strict expected failure with its reason.
KNOWN_GAPS: dict[str, str] = {}


def _with_gaps(cases):
    marked = []
    for node, overrides, names in cases:
        case_id = f"{node}-{_case_id(overrides)}"
        reason = next((r for key, r in KNOWN_GAPS.items() if case_id.startswith(key)), None)
        marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
        marked.append(pytest.param(node, overrides, names, marks=marks))
    return marked


@stand_in_nodes
@pytest.mark.parametrize("node, overrides, names", _with_gaps(NODE_CASES), ids=_case_id)
def test_node_bad_input_is_an_error_naming_the_input(node, overrides, names, node_classes, good_inputs):
    from emotion_core.errors import InvalidInputError

    TRIED["node"] += 1
    with pytest.raises(InvalidInputError) as caught:
        node_classes[node].execute(**{**good_inputs[node], **overrides})
    message = str(caught.value)
    assert len(message) < 2000, "one readable message, not an echo of the input"
    assert any(name.lower() in message.lower() for name in names.split("|")), message


# Accepted by design (emotion_core.images.as_rgb_batch): a single image without the batch
# dimension, gray + alpha (2 channels, gray repeated), RGBA (alpha dropped), 1-channel gray.
ACCEPTED_IMAGES = [("3-dim", _image(32, 32, 3)), ("gray+alpha", _image(1, 32, 32, 2)),
                   ("RGBA", _image(1, 32, 32, 4)), ("gray", _image(1, 32, 32, 1))]


@stand_in_nodes
@pytest.mark.parametrize("label, image", ACCEPTED_IMAGES, ids=[label for label, _ in ACCEPTED_IMAGES])
def test_gray_and_alpha_images_are_read_as_documented(label, image, node_classes, good_inputs):
    """The critic sees the RGB the documentation promises: gray repeated, alpha dropped."""
    from emotion_core.images import as_rgb_batch

    TRIED["node"] += 1
    rgb = as_rgb_batch(image)
    assert rgb.shape == (1, 32, 32, 3)
    expected = image[..., :3] if image.shape[-1] >= 3 else image[..., :1].expand(*image.shape[:-1], 3)
    assert torch.equal(rgb, expected.reshape(rgb.shape))
    inputs = good_inputs["EmotionDirection"]
    ours = node_classes["EmotionDirection"].execute(**{**inputs, "source_image": image}).args[0]
    same = node_classes["EmotionDirection"].execute(**{**inputs, "source_image": rgb}).args[0]
    assert ours.source == same.source


def test_zz_count_of_inputs_tried():
    """Runs last in this module (alphabetical within the file order): the figure for the README."""
    total = TRIED["node"] + TRIED["cli"]
    print(f"\nbad input matrix: {TRIED['node']} node cases over {len({n for n, _, _ in NODE_CASES})} nodes, "
          f"{TRIED['cli']} CLI cases over {len(COMMAND_MODULES)} commands, {total} in all")
    assert TRIED["cli"] == len(CLI_CASES)
    assert TRIED["node"] == (0 if COMFYUI else len(NODE_CASES) + len(ACCEPTED_IMAGES))
