"""ESMI against a reference of EmoEditor's ``metric_ESMI.py``.

The reference below was written step by step from reading upstream's script and its
``utils.load_emo_predictor`` / ``utils.cal_L1`` (upstream has no licence: nothing is
copied), with the libraries the script uses (PIL, torchvision's transforms, numpy,
scipy). Its GradCAM is this file's own account of what pytorch-grad-cam's ``GradCAM``
computes for one target layer and the default target; when the ``grad-cam`` package
happens to be installed it is checked against it too (the project never needs it).
The project's ESMI, S_emo, S_str and GradCAM region, and what ``score --against``
prints, must equal the reference within 1e-3 on the same tiny random-weight predictor.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from safetensors.torch import load_file
from scipy.stats import entropy
from torch import nn
from torchvision import transforms

from emotion_core.cli import main
from emotion_core.critics import load_critic
from emotion_core.metrics import emotion_score, esmi, gradcam, prepare_source
from emotion_core.taxonomy import EMOTIONS
from emotion_core.testing.assets import TEST_FILES
from emotion_core.testing.critic_assets import write_test_critics

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOLERANCE = 1e-3
CAM_TOLERANCE = 1e-5  # the GradCAM map itself: float32 rounding only

# ---------------------------------------------------------------- the reference

UPSTREAM_CLASSES = ["amusement", "anger", "awe", "contentment", "disgust", "excitement", "fear", "sadness"]
UPSTREAM_EPS = 1e-10
UPSTREAM_ALPHA = 0.5
UPSTREAM_TRANSFORM = transforms.Compose([transforms.Resize((224, 224)), transforms.ToTensor()])


def upstream_predictor(state: dict) -> nn.Module:
    """A torchvision ResNet-18 whose fc is Linear(512, 8), the state loaded, in eval mode."""
    model = torchvision.models.resnet18(weights=None)
    model.fc = nn.Linear(512, 8, bias=True)
    model.load_state_dict(state)
    return model.eval()


def upstream_read(path) -> Image.Image:
    """The file opened, resized to 224x224 with PIL's default filter, then made RGB."""
    return Image.open(path).resize((224, 224)).convert("RGB")


def opencv_linear_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """OpenCV's INTER_LINEAR: source coordinate (d + 0.5) * in / out - 0.5, clamped to the edges."""
    def taps(n_in: int, n_out: int):
        src = np.clip((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0, n_in - 1)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, n_in - 1), (src - low).astype(np.float32)

    y0, y1, fy = taps(image.shape[0], height)
    x0, x1, fx = taps(image.shape[1], width)
    rows_top, rows_bottom = image[y0], image[y1]
    top = rows_top[:, x0] * (1 - fx) + rows_top[:, x1] * fx
    bottom = rows_bottom[:, x0] * (1 - fx) + rows_bottom[:, x1] * fx
    return (top * (1 - fy)[:, None] + bottom * fy[:, None]).astype(np.float32)


def reference_gradcam(model: nn.Module, batch: torch.Tensor) -> np.ndarray:
    """GradCAM on ``model.layer4[-1]`` for the arg-max logit, at the input's size, as pytorch-grad-cam does it."""
    seen = {}

    def forward_hook(_module, _inputs, output):
        seen["activations"] = output
        output.register_hook(lambda grad: seen.__setitem__("gradients", grad))

    handle = model.layer4[-1].register_forward_hook(forward_hook)
    try:
        logits = model(batch)
    finally:
        handle.remove()
    category = int(np.argmax(logits.detach().numpy(), axis=-1)[0])  # default target: the predicted class
    model.zero_grad()
    logits[0, category].backward()
    activations = seen["activations"].detach().numpy()[0]  # [512,7,7]
    gradients = seen["gradients"].numpy()[0]
    weights = gradients.mean(axis=(1, 2))  # GradCAM: spatial mean of the gradients
    cam = np.maximum((weights[:, None, None] * activations).sum(axis=0), 0)
    cam = cam - cam.min()  # per-layer scaling, then the resize to (width, height) of the input
    cam = cam / (1e-7 + cam.max())
    cam = opencv_linear_resize(np.float32(cam), batch.shape[-2], batch.shape[-1])
    cam = np.maximum(cam, 0)  # aggregate over the one layer: ReLU, mean, scale again
    cam = cam - cam.min()
    return cam / (1e-7 + cam.max())


def reference_l1(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def reference_esmi(model: nn.Module, source_path, edit_path, target: str) -> dict:
    one_hot = np.zeros(8)
    one_hot[UPSTREAM_CLASSES.index(target)] = 1
    source_pil, edit_pil = upstream_read(source_path), upstream_read(edit_path)
    source = UPSTREAM_TRANSFORM(source_pil).unsqueeze(0)
    edit = UPSTREAM_TRANSFORM(edit_pil).unsqueeze(0)
    source_softmax = torch.softmax(model(source)[0], dim=0).detach().numpy()
    edit_softmax = torch.softmax(model(edit)[0], dim=0).detach().numpy()
    kl_source, kl_edit = entropy(one_hot, source_softmax), entropy(one_hot, edit_softmax)
    s_emo = max(0, kl_source - kl_edit) / (kl_source + UPSTREAM_EPS)

    cam = reference_gradcam(model, source)
    region = (cam > 0.5).astype(np.uint8)
    region3 = np.repeat(region[:, :, None], 3, axis=2)
    source_np, edit_np = np.array(source_pil), np.array(edit_pil)
    l_emo = reference_l1(source_np * region3, edit_np * region3)
    l_full = reference_l1(source_np, edit_np)
    s_str = l_emo / (l_full + UPSTREAM_EPS)
    return {"esmi": UPSTREAM_ALPHA * s_str + (1 - UPSTREAM_ALPHA) * s_emo, "s_emo": s_emo, "s_str": s_str,
            "cam": cam, "region": region.astype(bool)}


# ---------------------------------------------------------------- inputs


def _smooth_noise(rng, height, width, channels=3):
    """Random blobs: a coarse grid of random values upsampled, plus fine noise (so the resize filter matters)."""
    coarse = rng.integers(0, 256, size=(6, 8, channels), dtype=np.uint8)
    mode = "RGB" if channels == 3 else "RGBA"
    big = np.asarray(Image.fromarray(coarse, mode).resize((width, height), Image.Resampling.BILINEAR), dtype=np.int16)
    noise = rng.integers(-25, 26, size=big.shape)
    return np.clip(big + noise, 0, 255).astype(np.uint8)


def _edited(rng, source: np.ndarray) -> np.ndarray:
    """A local edit: a brightened, tinted block plus a little noise everywhere."""
    edit = source.astype(np.int16)
    h, w = source.shape[:2]
    edit[h // 4: h // 2, w // 3: 2 * w // 3, :3] += np.array([60, -20, 30][: min(3, source.shape[2])], dtype=np.int16)
    edit += rng.integers(-4, 5, size=edit.shape)
    return np.clip(edit, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """The test predictor file, its upstream-style model, and sources and edits of several sizes and modes."""
    folder = tmp_path_factory.mktemp("esmi_upstream")
    critic_file = write_test_critics(folder / "models", TEST_FILES)["critic_emoeditor"]
    rng = np.random.default_rng(13)
    source_rgb = _smooth_noise(rng, 200, 300)
    source_rgba = _smooth_noise(rng, 240, 180, channels=4)
    files = {
        "source_rgb": (source_rgb, "RGB", "png"),  # 300x200, bicubic down
        "source_rgba": (source_rgba, "RGBA", "png"),  # 180x240, premultiplied bicubic
        "source_224": (_smooth_noise(rng, 224, 224), "RGB", "png"),  # kept as is
        "edit_rgb": (_edited(rng, source_rgb), "RGB", "png"),  # same size as source_rgb
        "edit_rgba": (_edited(rng, source_rgba), "RGBA", "png"),
        "edit_small": (_smooth_noise(rng, 131, 97), "RGB", "jpg"),  # 97x131 JPEG, bicubic up
        "edit_gray": (_smooth_noise(rng, 224, 320)[..., 0], "L", "png"),  # grayscale
    }
    paths = {}
    for name, (array, mode, ext) in files.items():
        paths[name] = folder / f"{name}.{ext}"
        Image.fromarray(array, mode).save(paths[name], **({"quality": 90} if ext == "jpg" else {}))
    palette = Image.fromarray(_smooth_noise(rng, 48, 64)).quantize(colors=32)  # "P": PIL resizes it nearest
    paths["edit_palette"] = folder / "edit_palette.png"
    palette.save(paths["edit_palette"])
    model = upstream_predictor(load_file(str(critic_file)))
    return {"critic_file": critic_file, "critic": load_critic(critic_file), "model": model, "paths": paths}


PAIRS = [
    ("source_rgb", "edit_rgb", "awe"),
    ("source_rgb", "edit_small", "contentment"),
    ("source_rgb", "edit_palette", "sadness"),
    ("source_rgba", "edit_rgba", "fear"),
    ("source_rgba", "edit_gray", "excitement"),
    ("source_224", "edit_rgb", "amusement"),
    ("source_224", "edit_small", "anger"),
    ("source_224", "edit_gray", "disgust"),
]


def test_project_esmi_is_upstreams(case):
    critic, model, paths = case["critic"], case["model"], case["paths"]
    assert tuple(critic.class_order) == tuple(UPSTREAM_CLASSES), "the test predictor is in upstream's order"
    worst = {"esmi": 0.0, "s_emo": 0.0, "s_str": 0.0, "cam": 0.0}
    for source_name, edit_name, target in PAIRS:
        expected = reference_esmi(model, paths[source_name], paths[edit_name], target)
        source = prepare_source(critic, paths[source_name])
        scores = esmi(critic, source, [paths[edit_name]], target)
        cam = gradcam(critic, torch.from_numpy(source.pixels).float().div(255)[None])[0].numpy()
        differences = {
            "esmi": abs(scores.esmi[0].item() / 100 - expected["esmi"]),
            "s_emo": abs(scores.emotion[0].item() - expected["s_emo"]),
            "s_str": abs(scores.structure[0].item() - expected["s_str"]),
            "cam": float(np.abs(cam - expected["cam"]).max()),
        }
        for key, value in differences.items():
            worst[key] = max(worst[key], value)
            limit = CAM_TOLERANCE if key == "cam" else TOLERANCE
            assert value <= limit, f"{source_name} -> {edit_name} ({target}): {key} differs by {value:.3g}"
        assert 0.0 < expected["s_str"] < 1.0, "the pair exercises the emotion region"
        flipped = int((source.region.numpy() != expected["region"]).sum())
        assert flipped <= 2, f"{source_name}: {flipped} region pixels differ from the reference"
    print("max |project - reference|:", {k: f"{v:.2e}" for k, v in worst.items()})
    assert any(reference_esmi(model, paths[s], paths[e], t)["s_emo"] > 0 for s, e, t in PAIRS), "S_emo exercised"


def test_score_against_reports_upstreams_esmi(case, capsys):
    paths = case["paths"]
    edits = ["edit_rgb", "edit_small", "edit_palette", "edit_gray"]
    code = main(["score", *[str(paths[e]) for e in edits], "--critic", str(case["critic_file"]),
                 "--target", "awe", "--against", str(paths["source_rgb"]), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [row["image"] for row in rows] == [str(paths[e]) for e in edits]
    for name, row in zip(edits, rows):
        expected = reference_esmi(case["model"], paths["source_rgb"], paths[name], "awe")["esmi"]
        assert abs(row["esmi"] / 100 - expected) <= TOLERANCE, f"{name}: score printed {row['esmi']}, upstream x100 is " \
                                                                f"{100 * expected}"


def test_image_tensors_score_as_their_8_bit_files(case, tmp_path):
    """An IMAGE batch is scored as the RGB PNGs it would be saved as."""
    critic, model = case["critic"], case["model"]
    rng = np.random.default_rng(5)
    arrays = [_smooth_noise(rng, 150, 170) for _ in range(3)]
    files = []
    for i, array in enumerate(arrays):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(array).save(files[-1])
    images = torch.from_numpy(np.stack(arrays)).float() / 255.0
    scores = esmi(critic, images[:1], images[1:], "awe")
    for i in (1, 2):
        expected = reference_esmi(model, files[0], files[i], "awe")["esmi"]
        assert abs(scores.esmi[i - 1].item() / 100 - expected) <= TOLERANCE


def test_emotion_score_follows_scipy_and_pythons_max():
    """S_emo as the script computes it, including the degenerate cases of a zero target probability."""
    awe = EMOTIONS.index("awe")
    rows = torch.tensor([
        [0.1, 0.3, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05],
        [0.05, 0.6, 0.05, 0.05, 0.05, 0.1, 0.05, 0.05],
        [0.2, 0.0, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1],  # awe impossible
        [0.1, 0.3, 0.2, 0.1, 0.1, 0.1, 0.05, 0.1],  # sums to 1.05: scipy normalises
    ], dtype=torch.float32)

    def script(source, edit):
        one_hot = np.zeros(8)
        one_hot[awe] = 1
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_source, kl_edit = entropy(one_hot, source.numpy()), entropy(one_hot, edit.numpy())
            return max(0, kl_source - kl_edit) / (kl_source + UPSTREAM_EPS)

    for i in range(rows.shape[0]):
        got = emotion_score(rows[i], rows, "awe")
        for j in range(rows.shape[0]):
            want = script(rows[i], rows[j])
            if math.isnan(want):
                assert math.isnan(got[j].item()), (i, j)
            else:
                assert got[j].item() == pytest.approx(want, abs=1e-9), (i, j)
    assert math.isnan(script(rows[2], rows[0])) and script(rows[2], rows[2]) == 0.0, "both degenerate cases covered"


def test_reference_gradcam_is_pytorch_grad_cams(case):
    """Only where the optional ``grad-cam`` package is installed: the reference above is its GradCAM."""
    cam_module = pytest.importorskip("pytorch_grad_cam")
    model = case["model"]
    batch = UPSTREAM_TRANSFORM(upstream_read(case["paths"]["source_rgba"])).unsqueeze(0)
    # targets=None: the predicted class (upstream's call leaves it out; grad-cam 1.5 makes it a required argument)
    theirs = cam_module.GradCAM(model=model, target_layers=[model.layer4[-1]])(input_tensor=batch, targets=None)[0, :]
    assert float(np.abs(theirs - reference_gradcam(model, batch)).max()) <= 1e-5
