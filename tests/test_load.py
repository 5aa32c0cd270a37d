"""Load: every example workflow's graph executed 200 times in one process, on tiny models.

CI has no ComfyUI, so the graphs in ``workflows/api/*.json`` run through a small executor
here: the PACK nodes execute for real (``execute`` with the graph's widget values and
links), the core nodes (checkpoint/UNet loaders, CLIP Text Encode, KSampler, VAE,
InstructPix2Pix conditioning, ...) are the tiny stand-ins the node tests use. Sizes are
shrunk (64x64 images, 1-2 steps, one critic-loop pass) so one execution costs milliseconds.

After a warm-up the test measures RSS, live torch tensors, threads and open files, and the
attn2 patches on the ORIGINAL model (nodes must clone it: the checkpoint loader's MODEL is
shared by every execution, as ComfyUI's cache shares it); none of them may grow. The
figures are logged (``pytest -s`` or ``--log-cli-level=INFO``) for the README.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import threading
import warnings

import psutil
import pytest
import torch
from comfy_standins.tiny_models import TinyComfyClip, TinyLatentModel, TinyVae
from conftest import ROOT

pytestmark = [
    pytest.mark.skipif(bool(os.environ.get("COMFYUI_PATH")),
                       reason="stand-in core nodes; real-ComfyUI runs of the workflows are in test_workflows.py"),
    pytest.mark.usefixtures("one_torch_thread"),
]

log = logging.getLogger(__name__)

EXECUTIONS = 200
WARM_UP = 10
RSS_BOUND_MB = 50.0
# Widget values shrunk for speed; everything else runs as the workflow file says.
SHRINK = {
    "EmptyLatentImage": {"width": 64, "height": 64},
    "KSampler": {"steps": 2},
    "NegativeVisualDPOSampler": {"steps": 1},
    "EmotionCriticLoop": {"steps": 2, "max_iterations": 1, "candidates_per_iteration": 1},
    "AgentPromptRewriter": {"agents": 2},
    # the EmoEditor predictor test file keeps ResNet-18's real size (~0.2 s per image on a busy core): the
    # tiny CLIP critic stands in for it, through the same loader and critic interface
    "EmotionCriticLoader": {"critic_name": "test_clip_b32_zero_shot.safetensors"},
}
# emoeditor_edit loads EmoEditor's converted release files (make-test-models --with-emoeditor-release,
# ~1 GB); the encoder test file has the same layout
SAME_LAYOUT_FILES = {"emoeditor_encoder.safetensors": "test_emoeditor_encoder.safetensors"}
# Loader outputs are cached as ComfyUI's executor caches nodes whose inputs did not change
# (every other node runs on every execution).
LOADERS = {"CheckpointLoaderSimple", "UNETLoader", "VAELoader", "EmotionCriticLoader", "VisualPromptAdapterLoader"}
# The Flux graph needs a DiT model, DualCLIP, Flux Guidance and a Redux style model, which the SD1.5-shaped
# stand-ins do not model; it runs end to end in real ComfyUI (test_workflows.py, test_families_comfyui.py).
NEEDS_REAL_COMFYUI = {"emotion_flux_txt2img"}
WORKFLOWS = [pytest.param(p.stem, marks=pytest.mark.skip(reason="Flux graph: stand-ins have no DiT/Redux; "
                                                               "covered in real ComfyUI"))
             if p.stem in NEEDS_REAL_COMFYUI else p.stem
             for p in sorted((ROOT / "workflows" / "api").glob("*.json"))]


# --- the core nodes, on the tiny stand-ins (tests/comfy_standins) -----------------------------------------

def negative_visual_dpo_sampler(node, model, latent_image, steps, seed, **inputs):
    """The pack node's guider (clone, injection, three-branch guidance) sampled by the
    stand-in ``comfy.samplers`` over a linear sigma schedule; the real node hands the same
    guider ComfyUI's sigmas for its scheduler."""
    import comfy.sample
    import comfy.samplers
    from emotion_director_pack.nodes import negative_visual_guidance

    sampler = comfy.samplers.sampler_object(inputs.pop("sampler_name"))
    for name in ("scheduler", "denoise"):
        inputs.pop(name)
    samples = latent_image["samples"]
    guider = negative_visual_guidance.make_guider(model, latent=samples, **inputs)
    assert attn2_patches(guider.model_patcher) > 0, "the guider's model carries the visual prompt patches"
    sigmas = torch.linspace(1.0, 0.0, steps + 1)
    out = guider.sample(comfy.sample.prepare_noise(samples, seed), samples, sampler, sigmas, seed=seed)
    return ({**latent_image, "samples": out},)


class Core:
    """Core node stand-ins; one instance per test run holds the loaders' shared outputs."""

    def __init__(self):
        from comfy.model_patcher import ModelPatcher

        self.model = ModelPatcher(TinyLatentModel(), torch.device("cpu"), torch.device("cpu"))
        self.ip2p_model = ModelPatcher(TinyLatentModel(), torch.device("cpu"), torch.device("cpu"))
        self.clip, self.vae = TinyComfyClip(), TinyVae()
        self.image = torch.rand(1, 64, 64, 3, generator=torch.Generator().manual_seed(0))
        self.loaded: dict[tuple, tuple] = {}

    def CheckpointLoaderSimple(self, ckpt_name):
        return self.model, self.clip, self.vae

    def UNETLoader(self, unet_name, weight_dtype):
        return (self.ip2p_model,)

    def VAELoader(self, vae_name):
        return (self.vae,)

    def ConditioningZeroOut(self, conditioning):
        return ([[torch.zeros_like(t), dict(extras)] for t, extras in conditioning],)

    def LoadImage(self, image):
        return self.image, torch.zeros(64, 64)

    def CLIPTextEncode(self, text, clip):
        return (clip.encode_text(text),)

    def EmptyLatentImage(self, width, height, batch_size):
        return ({"samples": torch.zeros(batch_size, 4, height // 8, width // 8)},)

    def KSampler(self, model, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image, denoise):
        import comfy.sample

        samples = latent_image["samples"]
        out = comfy.sample.sample(model, comfy.sample.prepare_noise(samples, seed), steps, cfg, sampler_name,
                                  scheduler, positive, negative, samples, denoise=denoise)
        return ({**latent_image, "samples": out},)

    def VAEDecode(self, samples, vae):
        return (vae.decode(samples["samples"]),)

    def InstructPixToPixConditioning(self, positive, negative, vae, pixels):
        concat = vae.encode(pixels)
        with_concat = [[[t, {**extras, "concat_latent_image": concat}] for t, extras in c] for c in (positive, negative)]
        return with_concat[0], with_concat[1], {"samples": torch.zeros_like(concat)}

    def ImageBatch(self, image1, image2):
        return (torch.cat([image1, image2]),)

    def PreviewImage(self, images):
        return ()


def execute_graph(api: dict, pack_nodes: dict, core: Core) -> dict:
    """Run an API-format prompt: each node once its linked inputs are computed."""
    outputs: dict[str, tuple] = {}
    pending = dict(api)
    while pending:
        for node_id, entry in list(pending.items()):
            inputs = dict(entry["inputs"])
            links = {k: v for k, v in inputs.items() if isinstance(v, list)}
            if any(source not in outputs for source, _ in links.values()):
                continue
            inputs.update({k: outputs[source][index] for k, (source, index) in links.items()})
            inputs.update(SHRINK.get(entry["class_type"], {}))
            inputs.update({k: SAME_LAYOUT_FILES[v] for k, v in inputs.items() if isinstance(v, str) and v in SAME_LAYOUT_FILES})
            kind = entry["class_type"]
            key = (kind, json.dumps(inputs, sort_keys=True)) if kind in LOADERS else None
            if kind in LOADERS and key in core.loaded:
                outputs[node_id] = core.loaded[key]
            elif kind == "NegativeVisualDPOSampler":
                outputs[node_id] = negative_visual_dpo_sampler(pack_nodes[kind], **inputs)
            elif kind in pack_nodes:
                outputs[node_id] = pack_nodes[kind].execute(**inputs).args
            else:
                outputs[node_id] = getattr(core, kind)(**inputs)
            if kind in LOADERS:
                core.loaded[key] = outputs[node_id]
            del pending[node_id]
            break
        else:
            raise AssertionError(f"unresolvable links in {sorted(pending)}")
    return outputs


# --- measurements ----------------------------------------------------------------------------------------

def live_tensors() -> int:
    gc.collect()
    with warnings.catch_warnings():  # isinstance on torch's deprecated module proxies warns
        warnings.simplefilter("ignore")
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def attn2_patches(patcher) -> int:
    return len(patcher.model_options["transformer_options"].get("patches_replace", {}).get("attn2", {}))


def snapshot(core: Core) -> dict:
    gc.collect()
    return {"rss_mb": psutil.Process().memory_info().rss / 2**20, "tensors": live_tensors(),
            "threads": threading.active_count(), "fds": len(os.listdir("/proc/self/fd")),
            "patches": attn2_patches(core.model) + attn2_patches(core.ip2p_model)}


@pytest.fixture(scope="module")
def pack_nodes(pack, comfy_models_dir, tmp_path_factory):
    import asyncio

    import folder_paths
    from emotion_director_pack.nodes import EmotionDirectorExtension

    saved = folder_paths.output_directory
    folder_paths.output_directory = str(tmp_path_factory.mktemp("output"))
    classes = asyncio.run(EmotionDirectorExtension().get_node_list())
    yield {cls.define_schema().node_id: cls for cls in classes}
    folder_paths.output_directory = saved


@pytest.mark.parametrize("name", WORKFLOWS)
def test_200_executions_do_not_grow(name, pack_nodes):
    api = json.loads((ROOT / "workflows" / "api" / f"{name}.json").read_text())
    core = Core()
    pack_types = {e["class_type"] for e in api.values()} & set(pack_nodes)
    assert pack_types, f"{name} runs no pack node"
    first = execute_graph(api, pack_nodes, core)
    for _ in range(WARM_UP - 1):
        execute_graph(api, pack_nodes, core)
    before = snapshot(core)
    for _ in range(EXECUTIONS - WARM_UP - 1):
        execute_graph(api, pack_nodes, core)
    last = execute_graph(api, pack_nodes, core)
    for node_id in first:  # same seeds, same results: nothing accumulates between executions
        for a, b in zip(first[node_id], last[node_id]):
            if isinstance(a, torch.Tensor):
                assert torch.equal(a, b), f"{name} node {node_id} drifted between executions"
    del last
    after = snapshot(core)
    growth = {k: after[k] - before[k] for k in before}
    log.info("load %s: %d executions (%d pack nodes each: %s); after warm-up %s; growth %s", name, EXECUTIONS,
             sum(e["class_type"] in pack_nodes for e in api.values()), sorted(pack_types), before, growth)
    print(f"\nload {name}: {EXECUTIONS} executions, before {before}, growth {growth}")
    assert after["patches"] == 0, "a node left attn2 patches on the loader's model (it must clone)"
    assert growth["rss_mb"] < RSS_BOUND_MB
    assert growth["tensors"] <= max(10, before["tensors"] // 100)
    assert growth["threads"] <= 0 and growth["fds"] <= 0


def test_model_caches_are_bounded(pack_nodes):
    """Loaded files are cached by (path, mtime, size) in bounded LRU caches: loading the same
    files again reads nothing, and changing files cannot pile up models in memory."""
    from emotion_director_pack.nodes import conditioning, prompt_bank, visual_prompt

    caches = {"adapter": visual_prompt.cached_adapter, "encoder": conditioning.cached_emotion_encoder,
              "bank": prompt_bank.cached_bank, "text encoder": prompt_bank.cached_text_encoder}
    for name, cache in caches.items():
        info = cache.cache_info()
        assert info.maxsize is not None and info.maxsize <= 2, f"{name} cache is unbounded"
        assert info.currsize <= info.maxsize
    adapter = pack_nodes["VisualPromptAdapterLoader"]
    names = adapter.define_schema().inputs[0].options
    before = visual_prompt.cached_adapter.cache_info().misses
    for _ in range(3):
        for file_name in names:
            adapter.execute(adapter_name=file_name)
    info = visual_prompt.cached_adapter.cache_info()
    assert info.currsize <= info.maxsize and info.misses - before <= 3 * len(names)
    if len(names) <= info.maxsize:  # all fit: the second and third rounds read nothing
        assert info.misses - before <= len(names), f"adapter files re-read: {info}"
