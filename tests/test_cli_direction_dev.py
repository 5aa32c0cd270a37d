import json

import pytest
import torch
from PIL import Image

from emotion_core.cli import main
from emotion_core.taxonomy import EMOTIONS
from emotion_core.testing.assets import CHECKPOINT_ROLES, TEST_FILES
from emotion_core.testing.emoeditor_assets import CONVERTED_ROLES, RELEASE_ROLES


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_direction_json_without_source(capsys):
    code, out, _ = run(capsys, "direction", "--target", "AWE", "--strength", "1.5", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["target"] == "awe" and data["strength"] == 1.5 and data["source"] is None
    assert list(data["direction"]) == list(EMOTIONS) and data["direction"]["awe"] == pytest.approx(1.5)


def test_direction_with_source_image(capsys, comfy_models_dir, tmp_path):
    image = tmp_path / "src.png"
    Image.fromarray((torch.rand(40, 56, 3, generator=torch.Generator().manual_seed(1)) * 255).byte().numpy()).save(image)
    critic = comfy_models_dir / TEST_FILES["critic_emoeditor"]
    code, out, _ = run(capsys, "direction", "--target", "fear:1,sadness:1", "--source", str(image),
                       "--critic", str(critic), "--json")
    assert code == 0
    data = json.loads(out)
    assert sum(data["source"].values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(data["direction"].values()) == pytest.approx(0.0, abs=1e-5)
    assert data["targets"] == {"fear": 0.5, "sadness": 0.5}


@pytest.mark.parametrize("argv, needle", [
    (["direction", "--target", "joy"], "unknown emotion 'joy'"),
    (["direction", "--target", "awe", "--strength", "3"], "strength"),
    (["direction", "--target", "awe", "--source", "x.png"], "--critic"),
    (["direction"], "--target"),
    (["no-such-command"], "invalid choice"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert needle in err and len(err.strip().splitlines()) == 1


def test_make_test_models_writes_every_format(capsys, tmp_path):
    code, out, _ = run(capsys, "dev", "make-test-models", str(tmp_path / "models"), "--with-emoset", "--json")
    assert code == 0
    files = json.loads(out)["files"]
    for role, rel in TEST_FILES.items():
        if role in CHECKPOINT_ROLES + RELEASE_ROLES + CONVERTED_ROLES:
            assert role not in files  # only with --with-checkpoint / --with-emoeditor-release
            continue
        assert (tmp_path / "models" / rel).is_file(), role
        assert files[role].endswith(rel)
    # --with-emoset: EmoSet-118K's and EmoPair's published layouts, read by their readers
    from emotion_core.datasets.emoset import read_emoset
    from emotion_core.preference import read_dataset

    emoset = tmp_path / "models" / "datasets" / "emoset_tiny"
    assert files["emoset_root"] == str(emoset) and (emoset / "info.json").is_file()
    assert read_emoset(emoset, "train").total == 48 and not read_emoset(emoset, "test").missing_annotations
    assert read_dataset(files["emopair_root"]).layout == "emopair"
