"""Node-level tests: each node's execute on tiny tensors (stand-in ComfyUI modules,
or the real ones when COMFYUI_PATH is set)."""

import asyncio
import json

import pytest
import torch

from conftest import ROOT
from emotion_core.taxonomy import EMOTIONS
from comfy_standins.tiny_models import TinyComfyClip

NODE_IDS = {
    "EmotionCriticLoader": "Load Emotion Critic",
    "EmotionDirection": "Emotion Direction",
    "EmotionConditioning": "Emotion Conditioning",
    "VisualPromptAdapterLoader": "Load Visual Prompt Adapter",
    "VisualPromptInjector": "Visual Prompt Injector",
    "AgentPromptRewriter": "Agent Prompt Rewriter",
    "EmotionVisualPromptBank": "Emotion Visual Prompt Bank",
}


@pytest.fixture(scope="module")
def nodes(pack, comfy_models_dir):
    from emotion_director_pack.nodes import EmotionDirectorExtension

    classes = asyncio.run(EmotionDirectorExtension().get_node_list())
    return {cls.define_schema().node_id: cls for cls in classes}


@pytest.fixture(scope="module")
def clip():
    return TinyComfyClip()


def test_nodes_are_registered_with_schemas(nodes):
    for node_id, display in NODE_IDS.items():
        assert nodes[node_id].define_schema().display_name == display
    for node_id, cls in nodes.items():
        schema = cls.define_schema()
        assert schema.description, f"{node_id} has no description"
        for inp in schema.inputs:
            assert inp.tooltip, f"{node_id}.{inp.id} has no tooltip"
        for out in schema.outputs:
            assert out.tooltip, f"{node_id} output {out.id} has no tooltip"


def test_every_node_has_a_help_page(nodes):
    docs = ROOT / "web" / "docs"
    missing = sorted(node_id for node_id in nodes if not (docs / f"{node_id}.md").is_file())
    assert not missing, f"nodes without web/docs/<NodeId>.md: {missing}"
    for node_id in nodes:
        text = (docs / f"{node_id}.md").read_text()
        assert "\n## Tip" in text, f"{node_id}.md has no '## Tip' section for artists"
        inputs = [inp.id for inp in nodes[node_id].define_schema().inputs]
        undocumented = [name for name in inputs if name not in text]
        assert not undocumented, f"{node_id}.md does not describe inputs {undocumented}"


def test_node_classes_survive_comfyui_class_cloning(nodes):
    """ComfyUI re-creates node classes from their dict (a shallow clone per execution, then a
    locked class that refuses setattr): the input check must not wrap execute again."""
    from comfy_api.internal import lock_class, shallow_clone_class

    for node_id, cls in nodes.items():
        clone = cls.PREPARE_CLASS_CLONE({})
        for copy in (clone, shallow_clone_class(cls), lock_class(clone)):
            assert copy.execute.__func__ is cls.execute.__func__, f"{node_id}: execute wrapped twice"


def test_every_schema_passes_comfyui_validation(nodes):
    """ComfyUI refuses the whole pack if one schema has clashing ids; GET_SCHEMA validates."""
    assert set(NODE_IDS) <= set(nodes)
    for cls in nodes.values():
        cls.GET_SCHEMA()


def test_critic_combo_lists_test_files(nodes):
    combo = nodes["EmotionCriticLoader"].define_schema().inputs[0]
    assert "test_emoeditor_predictor.safetensors" in combo.options
    encoder_combo = nodes["EmotionConditioning"].define_schema().inputs[-1]
    assert encoder_combo.options[0] == "none" and "test_emoeditor_encoder.safetensors" in encoder_combo.options


def test_direction_without_source(nodes):
    out = nodes["EmotionDirection"].execute(target_emotion="awe", strength=1.5)
    direction, report = out.args
    assert direction.primary == "awe" and direction.source is None
    data = json.loads(report)
    assert data["direction"]["awe"] == pytest.approx(1.5) and data["source"] is None
    assert out.ui["emotion_direction"][0]["target"] == "awe"


def test_direction_blend_overrides_target(nodes):
    direction, _ = nodes["EmotionDirection"].execute(target_emotion="awe", strength=1.0, blend="fear:1, sadness:3").args
    assert direction.target == {"fear": 0.25, "sadness": 0.75}


@pytest.mark.parametrize("critic_name", ["test_emoeditor_predictor.safetensors", "test_clip_b32_zero_shot.safetensors",
                                         "test_emogen_probe.safetensors", "test_emoedit_probe.safetensors"])
def test_direction_with_source_and_critic(nodes, critic_name):
    (critic,) = nodes["EmotionCriticLoader"].execute(critic_name=critic_name).args
    image = torch.rand(2, 48, 40, 3, generator=torch.Generator().manual_seed(0))
    direction, report = nodes["EmotionDirection"].execute(target_emotion="contentment", strength=1.0,
                                                          source_image=image, critic=critic).args
    source = torch.tensor(direction.source)
    assert source.sum().item() == pytest.approx(1.0, abs=1e-5)
    assert direction.vector().sum().item() == pytest.approx(0.0, abs=1e-5)
    assert list(json.loads(report)["source"]) == list(EMOTIONS)


def test_source_without_critic_is_a_clear_error(nodes):
    with pytest.raises(ValueError, match="critic"):
        nodes["EmotionDirection"].execute(target_emotion="awe", strength=1.0, source_image=torch.rand(1, 32, 32, 3))


def test_unknown_blend_emotion_is_a_clear_error(nodes):
    with pytest.raises(ValueError, match="joy"):
        nodes["EmotionDirection"].execute(target_emotion="awe", strength=1.0, blend="joy:1")


def test_nan_source_image_is_a_clear_error(nodes):
    (critic,) = nodes["EmotionCriticLoader"].execute(critic_name="test_emoeditor_predictor.safetensors").args
    with pytest.raises(ValueError, match="NaN"):
        nodes["EmotionDirection"].execute(target_emotion="awe", strength=1.0,
                                          source_image=torch.full((1, 32, 32, 3), float("nan")), critic=critic)


def test_missing_critic_file_is_a_clear_error(nodes):
    with pytest.raises(ValueError, match="not found"):
        nodes["EmotionCriticLoader"].execute(critic_name="gone.safetensors")


def test_conditioning_training_free_moves_toward_target(nodes, clip):
    base = clip.encode_text("a harbour at dusk")
    direction, _ = nodes["EmotionDirection"].execute(target_emotion="awe", strength=1.0).args
    (out,) = nodes["EmotionConditioning"].execute(direction=direction, conditioning=base, clip=clip,
                                                  emotion_encoder="none").args
    awe = clip.encode_text("vast majestic grandeur, towering scale, sweeping vista, dramatic rays of light, sublime")
    neutral = clip.encode_text("")
    expected = base[0][0] + (awe[0][0] - neutral[0][0])
    assert torch.allclose(out[0][0], expected, atol=1e-5)
    assert not torch.equal(out[0][0], base[0][0])


def test_conditioning_strength_zero_is_identity(nodes, clip):
    base = clip.encode_text("a harbour at dusk")
    direction, _ = nodes["EmotionDirection"].execute(target_emotion="awe", strength=0.0).args
    (out,) = nodes["EmotionConditioning"].execute(direction=direction, conditioning=base, clip=clip).args
    assert torch.equal(out[0][0], base[0][0])


def test_conditioning_with_emoeditor_encoder(nodes):
    direction, _ = nodes["EmotionDirection"].execute(target_emotion="excitement", strength=1.0).args
    (out,) = nodes["EmotionConditioning"].execute(direction=direction,
                                                  emotion_encoder="test_emoeditor_encoder.safetensors").args
    assert out[0][0].shape == (1, 77, 768) and out[0][0].dtype == torch.float32


def test_conditioning_without_clip_is_a_clear_error(nodes, clip):
    direction, _ = nodes["EmotionDirection"].execute(target_emotion="awe", strength=1.0).args
    with pytest.raises(ValueError, match="clip"):
        nodes["EmotionConditioning"].execute(direction=direction, conditioning=clip.encode_text("x"))


def test_root_module_imports_nothing_heavy():
    import subprocess
    import sys

    from conftest import ROOT

    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('pack', r'{ROOT / '__init__.py'}', "
        f"submodule_search_locations=[r'{ROOT}'])\n"
        "m = importlib.util.module_from_spec(spec); sys.modules['pack'] = m; spec.loader.exec_module(m)\n"
        "heavy = [n for n in ('torch', 'open_clip', 'diffusers', 'transformers') if n in sys.modules]\n"
        "assert not heavy, heavy\n"
        "assert not hasattr(m, 'NODE_CLASS_MAPPINGS') and callable(m.comfy_entrypoint)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
