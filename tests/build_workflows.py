"""Write the example workflows (UI format + API twin) and the core-node spec snapshot.

Run with a ComfyUI checkout, from the repository root:

    COMFYUI_PATH=/path/to/ComfyUI python tests/build_workflows.py

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

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WORKFLOWS = ROOT / "workflows"
CORE_SPECS = HERE / "data" / "core_node_specs.json"

# Core inputs whose combo lists a folder's files: validated against the test assets instead.
CORE_FILE_INPUTS = {
    "CheckpointLoaderSimple": {"ckpt_name": "checkpoints"},
    "CLIPVisionLoader": {"clip_name": "clip_vision"},
    "LoadImage": {"image": "input"},
}
CHECKPOINT = "test_sd15_tiny.safetensors"
EXAMPLE_IMAGE = "harbour.png"  # web/examples/harbour.png, copied into ComfyUI's input/ by the tests
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
    g.add("SaveImage", images=(decoded, 0), filename_prefix="emotion_quickstart")
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
    row = images[0]
    for image in images[1:]:
        row = g.add("ImageBatch", image1=(row, 0), image2=(image, 0))
    g.add("SaveImage", title="Strength row (left to right)", images=(row, 0), filename_prefix="emotion_strength_sweep")
    g.note("5", "Every sampler uses the same seed, so the only change along the row is the emotion strength "
                f"({', '.join(map(str, SWEEP_STRENGTHS))}). Change the emotion on all four directions to compare.")
    return g


GRAPHS = {
    "emotion_quickstart": quickstart,
    "emotion_strength_sweep": strength_sweep,
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
    for module in ("comfy_extras.nodes_ip2p",):
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


def main() -> int:
    import conftest  # noqa: F401 - puts COMFYUI_PATH and the repository on sys.path

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
    CORE_SPECS.parent.mkdir(exist_ok=True)
    CORE_SPECS.write_text(json.dumps(infos, indent=1, sort_keys=True) + "\n")
    specs = {**pack, **{t: spec_from_v1(t, info, CORE_FILE_INPUTS.get(t)) for t, info in infos.items()}}
    (WORKFLOWS / "api").mkdir(parents=True, exist_ok=True)
    for name, graph in graphs.items():
        ui = build_ui(graph.api, specs, graph.notes, WEB_EXTRA_HEIGHT)
        ui["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"emotion-director/workflows/{name}"))
        (WORKFLOWS / f"{name}.json").write_text(json.dumps(ui, indent=1) + "\n")
        (WORKFLOWS / "api" / f"{name}.json").write_text(json.dumps(graph.api, indent=1) + "\n")
        print(f"wrote workflows/{name}.json and workflows/api/{name}.json ({len(graph.api)} nodes)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    sys.exit(main())
