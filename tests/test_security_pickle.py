"""Security: no code runs from model or data files.

A pickle whose ``__reduce__`` would create a marker file and set an environment
variable is written under every suffix a loader might accept (``.pt/.pth/.bin/.ckpt``
and a ``.safetensors`` name), in both torch's zip format and the legacy raw pickle
format, and fed to every loader of the project (library functions, nodes, CLI
commands). Each must refuse it with a clear error (``InvalidInputError`` family,
CLI exit 2) and the marker must never appear.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch

from conftest import load_pack

load_pack()
from emotion_core import errors as pack_errors  # noqa: E402

from emotion_core import errors  # noqa: E402
from emotion_core.cli import main  # noqa: E402

# Either copy of the error types: node code imports emotion_core through the pack package.
CLEAR_ERRORS = (errors.InvalidInputError, pack_errors.InvalidInputError)
ENV_FLAG = "EMOTION_DIRECTOR_PWNED"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def _payload(marker: Path) -> str:
    return f"import os; open({str(marker)!r}, 'w').write('pwned'); os.environ[{ENV_FLAG!r}] = '1'"


class Evil:
    """Unpickling this runs ``exec(code)``."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def write_evil(path: Path, marker: Path, legacy: bool = False) -> Path:
    """A checkpoint-looking file: a state dict with one real tensor and the payload next to it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"fc.weight": torch.zeros(8, 4), "fc.bias": torch.zeros(8), "extra": Evil(_payload(marker))}
    if legacy:
        with open(path, "wb") as handle:
            pickle.dump(state, handle)
    else:
        torch.save(state, path)
    return path


@pytest.fixture
def marker(tmp_path, monkeypatch):
    """The file the payload would create; checked (with the env flag) after every test."""
    monkeypatch.delenv(ENV_FLAG, raising=False)
    path = tmp_path / "PWNED"
    yield path
    assert not path.exists(), "the malicious pickle ran code"
    assert ENV_FLAG not in os.environ, "the malicious pickle ran code"


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(CLEAR_ERRORS) as info:
        call(*args, **kwargs)
    return str(info.value)


def test_the_payload_is_live(tmp_path, monkeypatch):
    """Sanity: full unpickling of these files does run the code, so the refusals below mean something."""
    monkeypatch.delenv(ENV_FLAG, raising=False)
    for legacy in (False, True):
        marker = tmp_path / f"live_{legacy}"
        path = write_evil(tmp_path / f"live_{legacy}.pt", marker, legacy)
        with open(path, "rb") as handle:  # what full unpickling (torch.load weights_only=False) does
            pickle.load(handle) if legacy else torch.load(handle, weights_only=False)  # noqa: S301,S614
        assert marker.read_text() == "pwned" and os.environ.pop(ENV_FLAG) == "1"


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on the raw-pickle files
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
def test_load_state_dict_refuses(tmp_path, marker, suffix, legacy):
    from emotion_core.weights import load_state_dict

    message = refused(load_state_dict, write_evil(tmp_path / f"evil{suffix}", marker, legacy))
    assert "refused" in message and "convert" in message


def test_load_state_dict_refuses_pickle_named_safetensors(tmp_path, marker):
    from emotion_core.weights import load_state_dict, read_metadata

    path = write_evil(tmp_path / "evil.safetensors", marker)
    assert "safetensors" in refused(load_state_dict, path)
    assert "safetensors" in refused(read_metadata, path)


@pytest.mark.parametrize("suffix", [*PICKLE_SUFFIXES, ".safetensors"])
def test_critic_loader_refuses(tmp_path, marker, suffix):
    from emotion_core.critics import load_critic

    refused(load_critic, write_evil(tmp_path / f"critic{suffix}", marker))


def test_clip_probe_backbone_file_refuses(tmp_path, marker):
    """A probe head whose sidecar names a pickled backbone: the backbone is refused too."""
    from emotion_core.critics import load_critic
    from emotion_core.weights import save_safetensors

    write_evil(tmp_path / "backbone.pt", marker)
    head = save_safetensors({"fc.weight": torch.zeros(8, 768), "fc.bias": torch.zeros(8)}, tmp_path / "probe.safetensors",
                            {"kind": "clip_probe", "layout": "emogen", "backbone_file": "backbone.pt"})
    refused(load_critic, head)


@pytest.mark.parametrize("suffix", [".pt", ".bin", ".safetensors"])
def test_emotion_encoder_refuses(tmp_path, marker, suffix):
    from emotion_core.emotion_encoder import load_emotion_encoder

    refused(load_emotion_encoder, write_evil(tmp_path / f"encoder{suffix}", marker))


@pytest.mark.parametrize("suffix", [".bin", ".pth", ".safetensors"])
def test_adapter_loader_refuses(tmp_path, marker, suffix):
    from emotion_core.visual_prompt.adapter import load_adapter

    refused(load_adapter, write_evil(tmp_path / f"adapter{suffix}", marker))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_prompt_bank_loader_refuses(tmp_path, marker, suffix):
    from emotion_core.bank.store import load_bank

    refused(load_bank, write_evil(tmp_path / f"bank{suffix}", marker))


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin", ".safetensors"])
def test_pipeline_single_file_refuses(tmp_path, marker, suffix):
    from emotion_core.pipeline.loading import load_pipeline

    message = refused(load_pipeline, write_evil(tmp_path / f"model{suffix}", marker))
    assert "safetensors" in message


def test_pipeline_folder_with_pickled_component_refuses(tmp_path, marker):
    """A diffusers folder whose UNet weights are a pickle: diffusers reads .bin weights-only; the load fails cleanly."""
    from emotion_core.pipeline.loading import load_pipeline
    from emotion_core.testing.diffusers_assets import write_tiny_sd_pipeline

    folder = Path(write_tiny_sd_pipeline(tmp_path / "tiny")["pipeline"])
    for weights in (folder / "unet").glob("diffusion_pytorch_model*"):
        weights.unlink()
    write_evil(folder / "unet" / "diffusion_pytorch_model.bin", marker)
    refused(load_pipeline, folder)


def test_train_dpo_resume_refuses_pickled_checkpoint(tmp_path, marker):
    """train-dpo's checkpoints are accelerate ``save_state`` folders, read weights-only: a pickle payload in
    the optimizer state is refused, naming the checkpoint."""
    from accelerate import Accelerator

    from emotion_core.training import checkpoints

    accelerator = Accelerator(cpu=True)
    model = torch.nn.Linear(4, 8)
    model, optimizer = accelerator.prepare(model, torch.optim.AdamW(model.parameters()))
    folder = tmp_path / f"{checkpoints.PREFIX}00000007"
    accelerator.save_state(str(folder))
    write_evil(folder / "optimizer.bin", marker)
    message = refused(checkpoints.load, accelerator, folder)
    assert f"{checkpoints.PREFIX}00000007" in message


def _pair_row(tokens: str) -> dict:
    return {"id": "000001", "chosen": "images/a.png", "rejected": "images/b.png", "prompt": "a harbour",
            "target_emotion": "awe", "negative_emotion": "fear",
            "visual_prompts": {"positive": {"tokens": tokens, "role": "positive"}, "negative": None}}


@pytest.mark.parametrize("tokens", ["visual_prompts/000001.safetensors", "visual_prompts/000001.pt"])
def test_preference_dataset_tokens_refused(tmp_path, marker, tokens):
    """A dataset from a stranger: its visual-prompt token file is a pickle. The pair is skipped with a reason."""
    from PIL import Image

    from emotion_core.preference.reader import read_dataset
    from emotion_core.training.data import prepare_examples

    (tmp_path / "images").mkdir()
    for name in ("a", "b"):
        Image.new("RGB", (8, 8)).save(tmp_path / "images" / f"{name}.png")
    write_evil(tmp_path / tokens, marker)
    (tmp_path / "pairs.jsonl").write_text(json.dumps(_pair_row(tokens)) + "\n")
    dataset = read_dataset(tmp_path)
    examples, skipped = prepare_examples(dataset.pairs, cross_dim=768)
    assert examples == [] and [pid for pid, _ in skipped] == ["000001"]
    assert "refused" in skipped[0][1] or "safetensors" in skipped[0][1]


def test_preference_reader_reads_pickled_pairs_file_as_bad_rows(tmp_path, marker):
    from emotion_core.preference.reader import read_dataset

    write_evil(tmp_path / "pairs.jsonl", marker, legacy=True)
    result = read_dataset(tmp_path)
    assert result.pairs == [] and result.skipped


@pytest.mark.parametrize("suffix", PICKLE_SUFFIXES)
def test_cli_convert_without_trust_pickle_exits_2(tmp_path, marker, capsys, suffix):
    source = write_evil(tmp_path / f"in{suffix}", marker)
    out = tmp_path / "out.safetensors"
    assert main(["convert", str(source), str(out)]) == 2
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and "refused" in err
    assert not out.exists()


def test_cli_score_and_generate_refuse_pickles(tmp_path, marker, capsys):
    """Commands that take model paths go through the same loaders."""
    from PIL import Image

    image = tmp_path / "x.png"
    Image.new("RGB", (16, 16)).save(image)
    critic = write_evil(tmp_path / "critic.pt", marker)
    assert main(["score", str(image), "--critic", str(critic)]) == 2
    model = write_evil(tmp_path / "model.ckpt", marker)
    assert main(["generate", "--model", str(model), "--emotion", "awe", "--prompt", "x", "--steps", "1",
                 "--out", str(tmp_path / "out")]) == 2
    capsys.readouterr()


# Nodes: the combo value names a pickle in the node's own model folder.


@pytest.fixture
def node_folder(tmp_path, monkeypatch):
    """Point one model folder at a fresh directory for this test only."""
    import folder_paths

    from emotion_director_pack.nodes.model_folders import MODEL_FOLDERS

    def use(name: str) -> Path:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        monkeypatch.setitem(folder_paths.folder_names_and_paths, name, ([str(folder)], set(MODEL_FOLDERS[name])))
        return folder

    return use


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".safetensors"])
def test_critic_loader_node_refuses(node_folder, marker, suffix):
    from emotion_director_pack.nodes.critics import EmotionCriticLoader

    write_evil(node_folder("emotion_critic") / f"evil{suffix}", marker)
    refused(EmotionCriticLoader.execute, f"evil{suffix}")


@pytest.mark.parametrize("suffix", [".bin", ".safetensors"])
def test_adapter_loader_node_refuses(node_folder, marker, suffix):
    from emotion_director_pack.nodes.visual_prompt import VisualPromptAdapterLoader

    write_evil(node_folder("ipadapter") / f"evil{suffix}", marker)
    refused(VisualPromptAdapterLoader.execute, f"evil{suffix}")


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_conditioning_node_encoder_refuses(node_folder, marker, suffix):
    from emotion_core.direction import make_direction
    from emotion_director_pack.nodes.conditioning import EmotionConditioning

    write_evil(node_folder("emotion_encoder") / f"evil{suffix}", marker)
    refused(EmotionConditioning.execute, make_direction("awe"), emotion_encoder=f"evil{suffix}")


def test_prompt_bank_node_refuses(node_folder, marker):
    from emotion_director_pack.nodes.prompt_bank import EmotionVisualPromptBank

    write_evil(node_folder("emotion_banks") / "evil.safetensors", marker)
    refused(EmotionVisualPromptBank.execute, "evil.safetensors", None, "awe", "a harbour", 4)
