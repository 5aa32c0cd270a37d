"""EmoEditor's released files: told apart by their keys, model_ip2p.pt split into its
diffusers halves, and the test stand-ins written in upstream's layouts and dtypes."""

import zipfile

import pytest
import torch

from emotion_core.emoeditor_release import ENCODER, IP2P, PREDICTOR, identify_release_file, read_ip2p, split_ip2p
from emotion_core.emotion_encoder import expected_shapes
from emotion_core.errors import ModelFormatError
from emotion_core.testing.emoeditor_assets import UNET_CONFIG, VAE_CONFIG


def _meta(shapes):
    return {key: torch.empty(shape, device="meta") for key, shape in shapes.items()}


def _predictor_state():
    from emotion_core.critics.resnet_predictor import build_resnet18

    with torch.device("meta"):
        return build_resnet18().state_dict()


@pytest.fixture(scope="module")
def ip2p_meta_state():
    from diffusers import AutoencoderKL, UNet2DConditionModel

    with torch.device("meta"):
        unet, vae = UNet2DConditionModel(**UNET_CONFIG), AutoencoderKL(**VAE_CONFIG)
    state = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    state.update({f"auto_encoder.{k}": v for k, v in vae.state_dict().items()})
    return state


def test_identifies_each_released_layout(ip2p_meta_state):
    assert identify_release_file(ip2p_meta_state, "model_ip2p.pt") == IP2P
    assert identify_release_file(_meta(expected_shapes()), "model_emoenc.pt") == ENCODER
    assert identify_release_file(_predictor_state(), "emo_predictor.pt") == PREDICTOR


@pytest.mark.parametrize("state, found", [
    ({"weight": torch.zeros(2)}, "found 1 tensors (weight); expected"),  # resembles nothing
    ({**_meta(expected_shapes()), "fc.8.weight": torch.zeros(1)}, "as model_emoenc.pt: unexpected fc.8.weight"),
    ({**_meta(expected_shapes()), "fc.6.weight": torch.empty(77 * 768, 512, device="meta")},
     "fc.6.weight has shape [59136, 512], expected [59136, 768]"),
    ({**_predictor_state(), "fc.weight": torch.empty(1000, 512, device="meta")},
     "as emo_predictor.pt: fc.weight has shape [1000, 512], expected [8, 512]"),  # ImageNet head
    ({"unet.conv_in.weight": torch.zeros(1)}, "as model_ip2p.pt: missing auto_encoder."),  # no VAE half
])
def test_anything_else_is_named(state, found):
    with pytest.raises(ModelFormatError, match="not one of EmoEditor's released files") as info:
        identify_release_file(state, "mystery.pt")
    assert "mystery.pt" in str(info.value) and found in str(info.value)
    assert "model_ip2p.pt: unet.*" in str(info.value)  # says what was expected


def test_ip2p_keys_beside_the_two_halves_are_refused(ip2p_meta_state):
    with pytest.raises(ModelFormatError, match="text_encoder.x"):
        identify_release_file({**ip2p_meta_state, "text_encoder.x": torch.zeros(1)}, "model_ip2p.pt")


def test_split_names_the_other_release_file():
    with pytest.raises(ModelFormatError, match="enc.pt is EmoEditor's model_emoenc.pt .by its keys., not model_ip2p.pt"):
        split_ip2p(_meta(expected_shapes()), "enc.pt")


def test_release_files_have_upstream_layouts_and_dtypes(emoeditor_release_files):
    from diffusers import AutoencoderKL, UNet2DConditionModel

    paths = emoeditor_release_files
    assert {role: path.name for role, path in paths.items()} == {
        "emoeditor_release_ip2p": "model_ip2p.pt", "emoeditor_release_encoder": "model_emoenc.pt",
        "emoeditor_release_predictor": "emo_predictor.pt"}
    for path in paths.values():
        assert zipfile.is_zipfile(path)  # torch.save's format, read back weights-only below
        assert path.parent.name == "emoeditor"
    unet, vae = read_ip2p(paths["emoeditor_release_ip2p"])
    assert {t.dtype for t in (*unet.values(), *vae.values())} == {torch.float16}
    assert unet["conv_in.weight"].shape == (320, 8, 3, 3)
    # upstream's modules load them strictly (as test.py's load_state_dict does)
    UNet2DConditionModel(**UNET_CONFIG).load_state_dict(unet)
    AutoencoderKL(**VAE_CONFIG).load_state_dict(vae)
    encoder = torch.load(paths["emoeditor_release_encoder"], weights_only=True)
    assert {k: tuple(v.shape) for k, v in encoder.items()} == expected_shapes()
    assert {t.dtype for t in encoder.values()} == {torch.float32}
    from emotion_core.critics.resnet_predictor import build_resnet18

    predictor = torch.load(paths["emoeditor_release_predictor"], weights_only=True)
    build_resnet18().load_state_dict(predictor)
    assert predictor["fc.weight"].dtype == torch.float32


def test_read_ip2p_is_weights_only(tmp_path):
    from helpers.malicious_pickle import write_malicious

    from emotion_core.errors import UnsafeCheckpointError

    path = write_malicious(tmp_path / "model_ip2p.pt", tmp_path / "ran")
    with pytest.raises(UnsafeCheckpointError):
        read_ip2p(path)
    assert not (tmp_path / "ran").exists()
