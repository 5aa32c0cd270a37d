"""Write the example workflows (UI format + API twin) and the core-node spec snapshot.

Run with a ComfyUI checkout, from the repository root:

    COMFYUI_PATH=/path/to/ComfyUI python tools/build_workflows.py [--check]

(``--check`` writes nothing and exits 1 when a file differs from what would be written.)

The graphs are defined here once, in API form; the UI files are laid out from them with
the node schemas. ``tests/test_workflows.py`` checks the written files (schemas, links,
widget values, UI <-> API equivalence) and runs the API twins in a real ComfyUI.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / "workflows"
CORE_SPECS = ROOT / "tests" / "data" / "core_node_specs.json"

# Core inputs whose combo lists a folder's files: validated against the test assets instead.
CORE_FILE_INPUTS = {
    "CheckpointLoaderSimple": {"ckpt_name": "checkpoints"},
    "CLIPVisionLoader": {"clip_name": "clip_vision"},
    "DualCLIPLoader": {"clip_name1": "text_encoders", "clip_name2": "text_encoders"},
    "LoadImage": {"image": "input"},
    "StyleModelLoader": {"style_model_name": "style_models"},
    "UNETLoader": {"unet_name": "diffusion_models"},
    "VAELoader": {"vae_name": "vae"},
}
CHECKPOINT = "test_sd15_tiny.safetensors"
EXAMPLE_IMAGE = "harbour.png"  # web/examples/harbour.png; the pack puts it into ComfyUI's input/ (nodes/example_inputs.py)
PROMPT = "a lighthouse on a cliff above the sea at dusk, wide shot"
NEGATIVE = "blurry, low quality, text, watermark"
# Room the web extension's emotion wheel / charts take below a node's widgets.
WEB_EXTRA_HEIGHT = {"EmotionDirection": 260.0, "AgentPromptRewriter": 260.0, "EmotionCriticLoop": 420.0}


class Graph:
    """An API prompt built node by node; ``add`` returns the new node's id for links."""

    def __init__(self) -> None:
        self.api: dict[str, dict] = {}
        self.notes: dict[str, str] = {}

    def add(self, class_type: str, title: str | None = None, **inputs) -> str:
        node_id = str(len(self.api) + 1)
        entry = {"class_type": class_type, "inputs": {k: (list(v) if isinstance(v, tuple) else v)
                                                     for k, v in inputs.items()}}
        if title:
            entry["_meta"] = {"title": title}
        self.api[node_id] = entry
        return node_id

    def note(self, anchor: str, text: str) -> None:
        self.notes[anchor] = text


def _ksampler(g: Graph, model, positive, negative, latent, seed=42, title=None) -> str:
    return g.add("KSampler", title=title, model=model, seed=seed, steps=20, cfg=7.0, sampler_name="euler",
                 scheduler="normal", positive=positive, negative=negative, latent_image=latent, denoise=1.0)


def _text_encoders(g: Graph, ckpt: str) -> tuple[str, str]:
    positive = g.add("CLIPTextEncode", title="Prompt", text=PROMPT, clip=(ckpt, 1))
    negative = g.add("CLIPTextEncode", title="Negative prompt", text=NEGATIVE, clip=(ckpt, 1))
    return positive, negative


def quickstart() -> Graph:
    """The smallest useful graph: an emotion direction steering a text prompt."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    positive, negative = _text_encoders(g, ckpt)
    direction = g.add("EmotionDirection", target_emotion="awe", strength=1.0, blend="")
    steered = g.add("EmotionConditioning", direction=(direction, 0), conditioning=(positive, 0), clip=(ckpt, 1),
                    emotion_encoder="none")
    latent = g.add("EmptyLatentImage", width=512, height=512, batch_size=1)
    sampled = _ksampler(g, (ckpt, 0), (steered, 0), (negative, 0), (latent, 0))
    decoded = g.add("VAEDecode", samples=(sampled, 0), vae=(ckpt, 2))
    g.add("EmotionSaveImage", images=(decoded, 0), filename_prefix="emotion_quickstart", direction=(direction, 0))
    g.note(direction, "Pick the emotion and how strongly to push toward it (0 = off, 1 = normal, 2 = strong). "
                      "Emotion Conditioning adds the emotion to your prompt's conditioning through your own CLIP.")
    return g


SWEEP_STRENGTHS = (0.0, 0.67, 1.33, 2.0)


def strength_sweep() -> Graph:
    """One prompt, one emotion, one seed, a row of strengths: see how far to push."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    positive, negative = _text_encoders(g, ckpt)
    latent = g.add("EmptyLatentImage", width=512, height=512, batch_size=1)
    images = []
    for strength in SWEEP_STRENGTHS:
        direction = g.add("EmotionDirection", title=f"Emotion Direction (strength {strength})",
                          target_emotion="contentment", strength=strength, blend="")
        steered = g.add("EmotionConditioning", direction=(direction, 0), conditioning=(positive, 0),
                        clip=(ckpt, 1), emotion_encoder="none")
        sampled = _ksampler(g, (ckpt, 0), (steered, 0), (negative, 0), (latent, 0))
        images.append(g.add("VAEDecode", samples=(sampled, 0), vae=(ckpt, 2)))
        g.add("EmotionSaveImage", images=(images[-1], 0), filename_prefix=f"emotion_strength_sweep/s{strength}",
              direction=(direction, 0))
    row = images[0]
    for image in images[1:]:
        row = g.add("ImageBatch", image1=(row, 0), image2=(image, 0))
    g.add("PreviewImage", title="Strength row (left to right)", images=(row, 0))
    g.note("5", "Every sampler uses the same seed, so the only change along the row is the emotion strength "
                f"({', '.join(map(str, SWEEP_STRENGTHS))}). Change the emotion on all four directions to compare.")
    return g


def _file(role: str) -> str:
    """A test asset's name as its model folder's combo lists it."""
    from emotion_core.testing.assets import TEST_FILES

    return TEST_FILES[role].split("/", 1)[1]


def _sampling(**overrides) -> dict:
    return {"seed": 42, "steps": 20, "cfg": 7.0, "sampler_name": "euler", "scheduler": "normal", **overrides}


def director_txt2img() -> Graph:
    """Emotion-Director end to end: MC-Agent rewrite -> prompt-bank visual prompts ->
    three-branch negative-visual guidance -> critic loop -> save."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=CHECKPOINT)
    rewriter = g.add("AgentPromptRewriter", prompt=PROMPT, emotion="awe", agents=5, creativity=0.5, seed=0,
                     backend="builtin", base_url="http://127.0.0.1:11434/v1", model="", timeout=30.0,
                     token_budget=77)
    positive = g.add("CLIPTextEncode", title="Rewritten prompt", text=(rewriter, 0), clip=(ckpt, 1))
    negative = g.add("CLIPTextEncode", title="Negative prompt", text=(rewriter, 1), clip=(ckpt, 1))
    adapter = g.add("VisualPromptAdapterLoader", adapter_name=_file("adapter_sd15"))
    bank = {"bank_name": _file("bank"), "adapter": (adapter, 0), "text": (rewriter, 0), "top_k": 3,
            "combine": "weighted", "negative_emotion": "none"}
    visual = g.add("EmotionVisualPromptBank", title="Visual prompt (awe)", emotion="awe", **bank)
    negative_visual = g.add("EmotionVisualPromptBank", title="Negative visual prompt (sadness)", emotion="sadness",
                            **bank)
    latent = g.add("EmptyLatentImage", width=512, height=512, batch_size=1)
    sampled = g.add("NegativeVisualDPOSampler", model=(ckpt, 0), adapter=(adapter, 0), positive=(positive, 0),
                    negative=(negative, 0), positive_visual_prompt=(visual, 0),
                    negative_visual_prompt=(negative_visual, 0), latent_image=(latent, 0), visual_scale=2.0,
                    visual_schedule="constant", visual_weight=0.8, denoise=1.0, **_sampling())
    decoded = g.add("VAEDecode", samples=(sampled, 0), vae=(ckpt, 2))
    critic = g.add("EmotionCriticLoader", critic_name=_file("critic_clip_b32"))
    loop = g.add("EmotionCriticLoop", model=(ckpt, 0), positive=(positive, 0), negative=(negative, 0),
                 vae=(ckpt, 2), critic=(critic, 0), target_emotion="awe", denoise_min=0.3, denoise_max=0.6,
                 ssim_min=0.5, ssim_max=0.95, confidence=0.6, rule="and", max_iterations=4,
                 candidates_per_iteration=2, mode="custom", source_image=(decoded, 0), latent=(sampled, 0),
                 clip=(ckpt, 1), emotion_encoder="none", **_sampling())
    g.add("EmotionSaveImage", title="Best image", images=(loop, 0), filename_prefix="emotion_director",
          critic=(critic, 0), report=(loop, 3))
    g.add("PreviewImage", title="All candidates", images=(loop, 2))
    g.note(rewriter, "MC-Agent: persona agents rewrite the prompt so the emotion is drawn, not named. Offline "
                     "(builtin) by default; LLM backends read their API key from the environment.")
    g.note(negative_visual, "MC-Diffusion: visual prompts from the emotion prompt bank. The sampler pushes toward "
                            "awe's visual prompt and away from sadness's under the same text (negative visual DPO "
                            "guidance).")
    g.note(loop, "Iterative Emotion Inference: re-edit until the critic sees the target and the scene is kept "
                 "(every pass counts toward max_iterations).")
    return g


def emoeditor_edit() -> Graph:
    """EmoEditor: the source image's emotions -> direction -> emotion encoder tokens ->
    InstructPix2Pix edits judged by the critic (EmoEditor mode)."""
    g = Graph()
    image = g.add("LoadImage", image=EXAMPLE_IMAGE)
    critic = g.add("EmotionCriticLoader", title="EmoEditor emotion predictor", critic_name=_file("emoeditor_critic"))
    direction = g.add("EmotionDirection", target_emotion="contentment", strength=1.0, blend="",
                      source_image=(image, 0), critic=(critic, 0))
    unet = g.add("UNETLoader", title="EmoEditor InstructPix2Pix UNet", unet_name=_file("emoeditor_unet"),
                 weight_dtype="default")
    vae = g.add("VAELoader", title="EmoEditor VAE", vae_name=_file("emoeditor_vae"))
    encoder = _file("emoeditor_encoder")
    emotion = g.add("EmotionConditioning", direction=(direction, 0), emotion_encoder=encoder)
    # EmoEditor runs without classifier-free guidance (cfg 1): the negative is never evaluated
    unused = g.add("ConditioningZeroOut", title="Negative (unused at cfg 1)", conditioning=(emotion, 0))
    ip2p = g.add("InstructPixToPixConditioning", positive=(emotion, 0), negative=(unused, 0), vae=(vae, 0),
                 pixels=(image, 0))
    loop = g.add("EmotionCriticLoop", model=(unet, 0), positive=(ip2p, 0), negative=(ip2p, 1), vae=(vae, 0),
                 critic=(critic, 0), target_emotion="contentment", denoise_min=0.7, denoise_max=0.98,
                 ssim_min=0.5, ssim_max=0.8, confidence=0.6, rule="or", max_iterations=10,
                 candidates_per_iteration=1, mode="EmoEditor", direction=(direction, 0), source_image=(image, 0),
                 latent=(ip2p, 2), emotion_encoder=encoder,
                 **_sampling(steps=30, cfg=1.0, sampler_name="ddim", scheduler="ddim_uniform"))
    g.add("EmotionSaveImage", title="Edited image", images=(loop, 0), filename_prefix="emoeditor_edit",
          critic=(critic, 0), direction=(direction, 0), report=(loop, 3))
    g.add("PreviewImage", title="All candidates", images=(loop, 2))
    g.note(direction, "EmoEditor's direction: the target emotion minus what the critic sees in the source image.")
    g.note(loop, "EmoEditor mode: the paper's settings (SSIM 0.5-0.8, confidence 0.6, 30 DDIM steps, no CFG, "
                 "emotion-encoder tokens) with a hard cap on passes.")
    return g


def _critic_loop(g: Graph, model, positive, negative, vae, critic, clip, image, latent, emotion: str,
                 **sampling) -> str:
    """The Emotion Critic Loop refining a first image, re-steering ``positive`` through ``clip``."""
    return g.add("EmotionCriticLoop", model=model, positive=positive, negative=negative, vae=vae, critic=critic,
                 target_emotion=emotion, denoise_min=0.3, denoise_max=0.6, ssim_min=0.5, ssim_max=0.95,
                 confidence=0.6, rule="and", max_iterations=4, candidates_per_iteration=2, mode="custom",
                 source_image=image, latent=latent, clip=clip, emotion_encoder="none", **sampling)


def sdxl_txt2img() -> Graph:
    """SDXL: the emotion steers both of SDXL's text encoders (and CLIP-G's pooled vector), then
    the critic loop refines the image toward the target."""
    g = Graph()
    ckpt = g.add("CheckpointLoaderSimple", title="SDXL checkpoint", ckpt_name=_file("checkpoint_sdxl"))
    positive, negative = _text_encoders(g, ckpt)
    direction = g.add("EmotionDirection", target_emotion="awe", strength=1.0, blend="")
    steered = g.add("EmotionConditioning", direction=(direction, 0), conditioning=(positive, 0), clip=(ckpt, 1),
                    emotion_encoder="none")
    latent = g.add("EmptyLatentImage", width=1024, height=1024, batch_size=1)
    sampled = _ksampler(g, (ckpt, 0), (steered, 0), (negative, 0), (latent, 0))
    decoded = g.add("VAEDecode", samples=(sampled, 0), vae=(ckpt, 2))
    critic = g.add("EmotionCriticLoader", critic_name=_file("critic_clip_b32"))
    loop = _critic_loop(g, (ckpt, 0), (positive, 0), (negative, 0), (ckpt, 2), (critic, 0), (ckpt, 1),
                        (decoded, 0), (sampled, 0), "awe", **_sampling())
    g.add("EmotionSaveImage", title="Best image", images=(loop, 0), filename_prefix="emotion_sdxl",
          critic=(critic, 0), direction=(direction, 0), report=(loop, 3))
    g.note(steered, "On SDXL the emotion descriptors go through both text encoders: CLIP-L's and CLIP-G's token "
                    "deltas land in their own halves of the 2048-wide tokens, CLIP-G's pooled delta in the pooled "
                    "output SDXL reads.")
    return g


def flux_txt2img() -> Graph:
    """Emotion-Director on Flux (guidance-distilled): the emotion steers the T5 tokens and CLIP-L's
    pooled vector; visual prompts through ComfyUI's Redux path (the prompt bank's SigLIP centres ->
    Apply Style Model), the negative visual branch is the same text with another emotion's Redux
    tokens; Negative Visual DPO at cfg 1 (ε_p + s_v(ε_p − ε_nv)); the critic loop refines at cfg 1."""
    g = Graph()
    unet = g.add("UNETLoader", title="Flux model", unet_name=_file("flux_model"), weight_dtype="default")
    clip = g.add("DualCLIPLoader", title="Flux text encoders (CLIP-L + T5-XXL)",
                 clip_name1=_file("text_encoder_clip_l"), clip_name2=_file("text_encoder_t5xxl"), type="flux",
                 device="default")
    vae = g.add("VAELoader", title="Flux VAE", vae_name=_file("flux_vae"))
    text = g.add("CLIPTextEncode", title="Prompt", text=PROMPT, clip=(clip, 0))
    guided = g.add("FluxGuidance", conditioning=(text, 0), guidance=3.5)
    # cfg 1: the negative is never evaluated
    negative = g.add("ConditioningZeroOut", title="Negative (unused at cfg 1)", conditioning=(text, 0))
    direction = g.add("EmotionDirection", target_emotion="awe", strength=1.0, blend="")
    steered = g.add("EmotionConditioning", direction=(direction, 0), conditioning=(guided, 0), clip=(clip, 0),
                    emotion_encoder="none")
    style = g.add("StyleModelLoader", title="Flux Redux", style_model_name=_file("redux"))
    redux = g.add("EmotionReduxPrompt", title="Visual prompts (awe, and sadness as the negative)",
                  bank_name=_file("bank_redux"), emotion="awe", text=PROMPT, top_k=3, combine="weighted",
                  negative_emotion="sadness", style_model=(style, 0))
    redux_apply = {"style_model": (style, 0), "strength": 1.0, "strength_type": "multiply"}
    positive = g.add("StyleModelApply", title="Prompt + awe's visual prompt", conditioning=(steered, 0),
                     clip_vision_output=(redux, 0), **redux_apply)
    negative_visual = g.add("StyleModelApply", title="Prompt + sadness's visual prompt (negative visual)",
                            conditioning=(steered, 0), clip_vision_output=(redux, 1), **redux_apply)
    latent = g.add("EmptySD3LatentImage", width=1024, height=1024, batch_size=1)
    flux_sampling = _sampling(cfg=1.0, scheduler="simple")
    sampled = g.add("NegativeVisualDPOSampler", model=(unet, 0), positive=(positive, 0), negative=(negative, 0),
                    negative_visual_conditioning=(negative_visual, 0), latent_image=(latent, 0), visual_scale=2.0,
                    visual_schedule="constant", visual_weight=0.8, denoise=1.0, **flux_sampling)
    decoded = g.add("VAEDecode", samples=(sampled, 0), vae=(vae, 0))
    critic = g.add("EmotionCriticLoader", critic_name=_file("critic_clip_b32"))
    loop = _critic_loop(g, (unet, 0), (guided, 0), (negative, 0), (vae, 0), (critic, 0), (clip, 0),
                        (decoded, 0), (sampled, 0), "awe", **flux_sampling)
    g.add("EmotionSaveImage", title="Best image", images=(loop, 0), filename_prefix="emotion_flux",
          critic=(critic, 0), direction=(direction, 0), report=(loop, 3))
    g.note(steered, "On Flux the emotion descriptors go through T5-XXL (the tokens) and CLIP-L (the pooled "
                    "vector); Flux Guidance's value stays in the conditioning. Flux dev is guidance-distilled: "
                    "keep cfg at 1.")
    g.note(negative_visual, "MC-Diffusion on Flux: the prompt bank's SigLIP centres go through the core Redux path. "
                            "The sampler pushes toward awe's Redux tokens and away from sadness's under the same "
                            "text: ε_p + s_v(ε_p − ε_nv), two rows in one model call at cfg 1.")
    return g


GRAPHS = {
    "emotion_quickstart": quickstart,
    "emotion_strength_sweep": strength_sweep,
    "emotion_director_txt2img": director_txt2img,
    "emoeditor_edit": emoeditor_edit,
    "emotion_sdxl_txt2img": sdxl_txt2img,
    "emotion_flux_txt2img": flux_txt2img,
}


# --- specs ------------------------------------------------------------------------------

def _core_v1_info(node_class) -> dict:
    """A V1 node's object_info-like entry (what the frontend reads)."""
    inputs = node_class.INPUT_TYPES()
    info = {"input": {}, "input_order": {}}
    for group in ("required", "optional"):
        if group in inputs:
            info["input"][group] = {name: list(spec) for name, spec in inputs[group].items()}
            info["input_order"][group] = list(inputs[group])
    info["output"] = list(node_class.RETURN_TYPES)
    info["output_name"] = list(getattr(node_class, "RETURN_NAMES", None) or node_class.RETURN_TYPES)
    return info


def _v3_info(node_class) -> dict:
    info = node_class.GET_SCHEMA().get_v1_info(node_class)
    return {"input": info.input, "input_order": info.input_order, "output": info.output,
            "output_name": info.output_name}


def core_node_infos(types: set[str]) -> dict[str, dict]:
    """object_info entries of the core nodes the workflows use, file lists emptied."""
    import importlib

    import nodes as comfy_nodes

    found: dict[str, object] = dict(comfy_nodes.NODE_CLASS_MAPPINGS)
    for module in ("comfy_extras.nodes_ip2p", "comfy_extras.nodes_flux", "comfy_extras.nodes_sd3"):
        extension = asyncio.run(importlib.import_module(module).comfy_entrypoint())
        for cls in asyncio.run(extension.get_node_list()):
            found[cls.define_schema().node_id] = cls
    infos = {}
    for node_type in sorted(types):
        cls = found[node_type]
        info = _v3_info(cls) if hasattr(cls, "GET_SCHEMA") else _core_v1_info(cls)
        for name in CORE_FILE_INPUTS.get(node_type, {}):
            spec = info["input"]["required"][name]
            spec[0] = []
        infos[node_type] = json.loads(json.dumps(info, default=list))
    return infos


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file would change")
    check = parser.parse_args(argv).check
    sys.path.insert(0, str(ROOT / "tests"))
    import conftest  # puts COMFYUI_PATH and the repository on sys.path
    from workflow_graph import build_ui, spec_from_schema, spec_from_v1

    if not conftest.COMFYUI_PATH:
        print("set COMFYUI_PATH to a ComfyUI checkout", file=sys.stderr)
        return 2
    conftest.load_pack()
    from emotion_director_pack.nodes import EmotionDirectorExtension

    pack = {cls.define_schema().node_id: spec_from_schema(cls.define_schema())
            for cls in asyncio.run(EmotionDirectorExtension().get_node_list())}
    graphs = {name: build() for name, build in GRAPHS.items()}
    core_types = {e["class_type"] for g in graphs.values() for e in g.api.values()} - set(pack)
    infos = core_node_infos(core_types)
    files = {CORE_SPECS: json.dumps(infos, indent=1, sort_keys=True) + "\n"}
    specs = {**pack, **{t: spec_from_v1(t, info, CORE_FILE_INPUTS.get(t)) for t, info in infos.items()}}
    for name, graph in graphs.items():
        ui = build_ui(graph.api, specs, graph.notes, WEB_EXTRA_HEIGHT)
        ui["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"emotion-director/workflows/{name}"))
        files[WORKFLOWS / f"{name}.json"] = json.dumps(ui, indent=1) + "\n"
        files[WORKFLOWS / "api" / f"{name}.json"] = json.dumps(graph.api, indent=1) + "\n"
    if check:
        stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
        for path in stale:
            print(f"{path.relative_to(ROOT)} differs from its definition", file=sys.stderr)
        print(f"{len(files) - len(stale)} of {len(files)} files are up to date")
        return 1 if stale else 0
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
