"""`convert` on EmoEditor's released files and diffusers UNets: the layout is recognised
from the keys, the UNet and VAE come out in the LDM layout and compute what diffusers
computes on the same weights, anything else is named, an interrupt leaves nothing."""

import filecmp
import json

import pytest
import torch
from safetensors.torch import load_file

from emotion_core.cli import main
from emotion_core.critics import load_critic
from emotion_core.emoeditor_release import read_ip2p
from emotion_core.emotion_encoder import load_emotion_encoder
from emotion_core.taxonomy import EMOEDITOR_ORDER
from emotion_core.testing.emoeditor_assets import UNET_CONFIG, VAE_CONFIG
from emotion_core.weights import read_metadata

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def converted(emoeditor_converted_files):
    """The README's convert commands' outputs, by short name."""
    return {name: emoeditor_converted_files[f"emoeditor_{role}"]
            for name, role in (("unet", "unet"), ("vae", "vae"), ("encoder", "encoder"), ("predictor", "critic"))}


def test_released_files_are_recognised_from_their_keys(converted):
    paths = converted
    assert read_metadata(paths["unet"]) == {"kind": "unet", "layout": "ldm", "in_channels": 8,
                                            "converted_from": "model_ip2p.pt"}
    assert read_metadata(paths["vae"]) == {"kind": "vae", "layout": "ldm", "converted_from": "model_ip2p.pt"}
    assert read_metadata(paths["encoder"]) == {"kind": "emoeditor_encoder", "class_order": list(EMOEDITOR_ORDER),
                                               "converted_from": "model_emoenc.pt"}
    assert read_metadata(paths["predictor"])["kind"] == "emoeditor_resnet18"


def test_converted_files_keep_fp16_and_use_ldm_names(converted):
    paths = converted
    unet, vae = load_file(paths["unet"]), load_file(paths["vae"])
    assert unet["input_blocks.0.0.weight"].shape == (320, 8, 3, 3)
    assert not any(k.startswith(("unet.", "auto_encoder.", "model.diffusion_model.")) for k in unet)
    assert "encoder.down.0.block.0.conv1.weight" in vae and "decoder.mid.attn_1.q.weight" in vae
    assert {t.dtype for t in (*unet.values(), *vae.values())} == {torch.float16}


def test_make_test_models_converts_as_the_readme_says(converted, emoeditor_release_files, tmp_path):
    """``convert_emoeditor_release`` (what make-test-models and the ComfyUI tests use) writes the
    same bytes as the README's commands."""
    from emotion_core.testing.assets import TEST_FILES
    from emotion_core.testing.emoeditor_assets import convert_emoeditor_release

    models = tmp_path / "models"
    for role, path in emoeditor_release_files.items():
        (models / TEST_FILES[role]).parent.mkdir(parents=True, exist_ok=True)
        (models / TEST_FILES[role]).symlink_to(path)
    written = convert_emoeditor_release(models, TEST_FILES)
    readme = {"emoeditor_unet": "unet", "emoeditor_vae": "vae", "emoeditor_encoder": "encoder", "emoeditor_critic": "predictor"}
    assert written.keys() == readme.keys()
    assert all(filecmp.cmp(written[role], converted[name], shallow=False) for role, name in readme.items())


def test_converted_encoder_and_predictor_load(converted, emoeditor_release_files):
    paths = converted
    encoder = load_emotion_encoder(paths["encoder"])
    released = torch.load(emoeditor_release_files["emoeditor_release_encoder"], weights_only=True)
    assert encoder.class_order == EMOEDITOR_ORDER
    assert torch.equal(encoder.fc[6].weight, released["fc.6.weight"])
    critic = load_critic(paths["predictor"])
    assert critic.class_order == EMOEDITOR_ORDER and critic.predict(torch.rand(1, 32, 32, 3)).shape == (1, 8)


def _diffusers_from_ldm(cls, converter, path, config, prefix):
    """The LDM file read back by diffusers' own single-file conversion, in fp32."""
    with torch.device("meta"):
        model = cls(**config)
    state = converter({prefix + k: v.float() for k, v in load_file(path).items()}, dict(model.config))
    model = cls(**config)
    model.load_state_dict(state)
    return model.eval()


def test_converted_unet_computes_what_diffusers_computes(converted, emoeditor_release_files):
    from diffusers import UNet2DConditionModel
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    paths = converted
    reference = UNet2DConditionModel(**UNET_CONFIG).eval()
    reference.load_state_dict({k: v.float() for k, v in read_ip2p(emoeditor_release_files["emoeditor_release_ip2p"])[0].items()})
    unet = _diffusers_from_ldm(UNet2DConditionModel, convert_ldm_unet_checkpoint, paths["unet"], UNET_CONFIG,
                               "model.diffusion_model.")
    generator = torch.Generator().manual_seed(0)
    latents = torch.randn(1, 8, 8, 8, generator=generator)  # noisy latent + source image latent
    context = torch.randn(1, 77, 768, generator=generator)
    with torch.no_grad():
        expected = reference(latents, 500, encoder_hidden_states=context).sample
        got = unet(latents, 500, encoder_hidden_states=context).sample
    assert (got - expected).abs().max().item() <= 1e-3 and expected.abs().max() > 0.1


def test_converted_vae_decodes_what_diffusers_decodes(converted, emoeditor_release_files):
    from diffusers import AutoencoderKL
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    paths = converted
    reference = AutoencoderKL(**VAE_CONFIG).eval()
    reference.load_state_dict({k: v.float() for k, v in read_ip2p(emoeditor_release_files["emoeditor_release_ip2p"])[1].items()})
    vae = _diffusers_from_ldm(AutoencoderKL, convert_ldm_vae_checkpoint, paths["vae"], VAE_CONFIG, "first_stage_model.")
    latents = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, got = reference.decode(latents).sample, vae.decode(latents).sample
    assert (got - expected).abs().max().item() <= 1e-3 and expected.abs().max() > 0.1


@pytest.mark.parametrize("where", ["unet_folder", "unet_file", "pipeline_folder"])
def test_diffusers_unet_converts_the_same_way(capsys, tiny_sd_pipeline, tmp_path, where):
    pipeline = tiny_sd_pipeline["pipeline"]
    source = {"unet_folder": pipeline / "unet", "unet_file": pipeline / "unet" / "diffusion_pytorch_model.safetensors",
              "pipeline_folder": pipeline}[where]
    extra = ["--vae-out", tmp_path / "vae.safetensors"] if where == "pipeline_folder" else []
    code, out, _ = run(capsys, "convert", source, tmp_path / "unet.safetensors", "--dtype", "fp16", *extra, "--json")
    assert code == 0 and json.loads(out)["kind"] == "unet"
    unet = load_file(tmp_path / "unet.safetensors")
    assert unet["input_blocks.0.0.weight"].shape[1] == 4 and unet["out.2.weight"].dtype == torch.float16
    assert (tmp_path / "vae.safetensors").is_file() == bool(extra)


def test_dtype_can_be_changed(capsys, emoeditor_release_files, tmp_path):
    source = emoeditor_release_files["emoeditor_release_predictor"]
    code, _, _ = run(capsys, "convert", source, tmp_path / "p.safetensors", "--dtype", "fp16")
    state = load_file(tmp_path / "p.safetensors")
    assert code == 0 and state["fc.weight"].dtype == torch.float16
    assert state["bn1.num_batches_tracked"].dtype == torch.int64  # integers stay integers
    code, _, err = run(capsys, "convert", source, tmp_path / "q.safetensors", "--dtype", "fp8")
    assert code == 2 and "--dtype must be one of fp16, bf16, fp32" in err


@pytest.mark.parametrize("state, needles", [
    ({"encoder.weight": torch.zeros(3, 3)}, ["found 1 tensors (encoder.weight)", "--kind", "model_ip2p.pt: unet.*"]),
    ({"fc.0.weight": torch.zeros(256, 8), "fc.0.bias": torch.zeros(256)},
     ["as model_emoenc.pt: missing fc.2.bias", "--kind"]),
    ({"unet.conv_in.weight": torch.zeros(1)}, ["as model_ip2p.pt: missing", "auto_encoder."]),
])
def test_other_pt_files_are_named(capsys, tmp_path, state, needles):
    source = tmp_path / "mystery.pt"
    torch.save(state, source)
    code, out, err = run(capsys, "convert", source, tmp_path / "out.safetensors")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert "mystery.pt: not a layout convert recognises" in err
    assert all(needle in err for needle in needles), err
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("argv, needle", [
    (["{predictor}", "{out}", "--vae-out", "{tmp}/vae.safetensors"], "holds no VAE"),
    (["{predictor}", "{out}", "--vae-out", "{tmp}/vae.pt"], "--vae-out must be a .safetensors file"),
    (["{predictor}", "{out}", "--vae-out", "{out}"], "--vae-out must differ from OUT"),
    (["{tmp}", "{out}"], "no diffusers weights"),
])
def test_bad_convert_requests_exit_2(capsys, emoeditor_release_files, tmp_path, argv, needle):
    names = {"predictor": emoeditor_release_files["emoeditor_release_predictor"], "out": tmp_path / "o.safetensors",
             "tmp": tmp_path}
    code, _, err = run(capsys, "convert", *[a.format(**names) for a in argv])
    assert code == 2 and needle in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def _interrupt_on_call(real, calls: int):
    count = {"n": 0}

    def wrapper(*args, **kwargs):
        count["n"] += 1
        if count["n"] == calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("where", ["writing the UNet", "writing the VAE", "renaming the VAE into place"])
def test_interrupted_convert_leaves_nothing(capsys, emoeditor_release_files, tmp_path, monkeypatch, where):
    import os

    from emotion_core import weights

    if where == "renaming the VAE into place":  # the UNet already has its name: it is removed again
        monkeypatch.setattr(weights.os, "replace", _interrupt_on_call(os.replace, 2))
    else:
        monkeypatch.setattr(weights, "save_file", _interrupt_on_call(weights.save_file, 1 if "UNet" in where else 2))
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = run(capsys, "convert", emoeditor_release_files["emoeditor_release_ip2p"], out / "unet.safetensors",
                       "--vae-out", out / "vae.safetensors")
    assert code == 1 and "interrupted" in err
    assert list(out.iterdir()) == []
