"""ESMI against the published script rebuilt from its parts (spec §9): pytorch-grad-cam's GradCAM on torchvision's
ResNet-18 (seeded random weights), Pillow's resize, the uint8 L1 and scipy's KL; plus the golden S_emo cases."""

import json

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_grad_cam import GradCAM
from resnet_pair import comfy, models, smooth_image
from scipy.stats import entropy

import emo_core
from emo_core.emoeditor.emotions import EMOTIONS
from emo_core.emoeditor.esmi import kl_to_target, s_emo, score_edits
from emo_core.emoeditor.gradcam import grad_cam

SIZES = [(224, 224), (300, 451), (100, 150), (512, 384)]


def published(tv, source: np.ndarray, edit: np.ndarray, target: str) -> dict:
    """metric_ESMI.py for one pair, written from the spec with the reference libraries."""
    def load(a):
        return Image.fromarray(a).resize((224, 224)).convert("RGB")

    def tensor(im):
        return torch.from_numpy(np.array(im)).permute(2, 0, 1)[None].float() / 255

    src, ed = load(source), load(edit)
    cam = GradCAM(model=tv, target_layers=[tv.layer4[-1]])(input_tensor=tensor(src), targets=None)[0]
    mask3 = np.repeat((cam > 0.5).astype(np.uint8)[:, :, None], 3, axis=2)
    a, b = np.array(src), np.array(ed)

    def cal_l1(x, y):
        return np.mean(np.abs(x.astype(np.float64) - y.astype(np.float64)))

    structure = cal_l1(a * mask3, b * mask3) / (cal_l1(a, b) + 1e-10)
    with torch.no_grad():
        p = torch.softmax(tv(tensor(src)), 1)[0].numpy()
        q = torch.softmax(tv(tensor(ed)), 1)[0].numpy()
    onehot = np.eye(8)[EMOTIONS.index(target)]
    kl_src, kl_edit = entropy(onehot, p), entropy(onehot, q)
    emotion = max(0, kl_src - kl_edit) / (kl_src + 1e-10)
    return {"cam": cam, "scores": (0.5 * structure + 0.5 * emotion, structure, emotion), "p": p, "q": q}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_grad_cam_equals_pytorch_grad_cam(seed):
    tv, ours = models(seed)
    x = torch.rand(3, 3, 224, 224, generator=torch.Generator().manual_seed(100 + seed))
    ref = GradCAM(model=tv, target_layers=[tv.layer4[-1]])(input_tensor=x, targets=None)
    got = grad_cam(ours, x).numpy()
    assert got.shape == ref.shape == (3, 224, 224)
    assert np.abs(got - ref).max() <= 2e-6
    away = np.abs(ref - 0.5) > 1e-6
    assert int(((got > 0.5) != (ref > 0.5))[away].sum()) == 0
    # a chosen class: grad-cam's ClassifierOutputTarget
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    ref5 = GradCAM(model=tv, target_layers=[tv.layer4[-1]])(input_tensor=x, targets=[ClassifierOutputTarget(5)] * 3)
    assert np.abs(grad_cam(ours, x, target=5).numpy() - ref5).max() <= 2e-6


def test_torch_bilinear_is_opencvs_resize():
    g = np.random.RandomState(3)
    for shape in [(7, 7), (5, 9), (14, 14)]:
        small = g.rand(*shape).astype(np.float32)
        ref = cv2.resize(small, (224, 224))
        got = F.interpolate(torch.from_numpy(small)[None, None], size=(224, 224), mode="bilinear",
                            align_corners=False)[0, 0].numpy()
        assert np.abs(ref - got).max() <= 1e-6


@pytest.mark.parametrize("seed", [0, 1])
def test_esmi_equals_the_published_script(seed):
    tv, ours = models(seed)
    for n, size in enumerate(SIZES):
        source = smooth_image(10 * seed + n, size)
        edit = source.copy()
        h, w = size
        edit[h // 4:h // 2, w // 3:w // 2] = smooth_image(99 + n, (h // 2 - h // 4, w // 2 - w // 3))
        other = smooth_image(500 + n, size)
        for target, candidate in (("awe", edit), ("sadness", other), (EMOTIONS[n], edit)):
            ref = published(tv, source, candidate, target)
            details = score_edits(ours, comfy(source), comfy(candidate), target)
            got = details.scores[0].numpy()
            away = np.abs(ref["cam"] - 0.5) > 1e-6
            assert int((details.masks[0].numpy() != (ref["cam"] > 0.5))[away].sum()) == 0
            if np.array_equal(details.masks[0].numpy(), ref["cam"] > 0.5):
                assert got[1] == pytest.approx(ref["scores"][1], abs=1e-12)
            assert got[2] == pytest.approx(ref["scores"][2], abs=1e-6)
            assert got[0] == pytest.approx(0.5 * got[1] + 0.5 * got[2], abs=1e-15)
            assert np.abs(details.source_distribution[0].numpy() - ref["p"]).max() <= 1e-6


def test_batch_of_edits_of_one_source_and_per_pair_targets():
    tv, ours = models(4)
    source = smooth_image(1, (256, 256))
    edits = [smooth_image(2 + k, (256, 256)) for k in range(3)]
    targets = ["fear", "awe", "anger"]
    batch = emo_core.esmi(ours, comfy(source), comfy(*edits), targets)
    assert batch.dtype == torch.float64 and batch.shape == (3, 3)
    for k in range(3):
        single = emo_core.esmi(ours, comfy(source), comfy(edits[k]), targets[k])
        assert torch.equal(batch[k], single[0])
        assert batch[k, 2].item() == pytest.approx(published(tv, source, edits[k], targets[k])["scores"][2], abs=1e-6)


def test_edit_equal_to_source_scores_zero():
    _, ours = models(5)
    for size in [(224, 224), (300, 200)]:
        image = comfy(smooth_image(7, size))
        scores = emo_core.esmi(ours, image, image.repeat(8, 1, 1, 1), list(EMOTIONS))
        assert torch.isfinite(scores).all() and torch.equal(scores, torch.zeros(8, 3, dtype=torch.float64))


def test_s_emo_matches_the_golden_cases(golden):
    data = json.loads((golden / "emoeditor" / "s_emo.json").read_text())
    for case in data["cases"]:
        p, q, t = np.float32(case["p_src"]), np.float32(case["p_edit"]), case["target_index"]
        assert s_emo(p, q, t) == pytest.approx(case["S_emo"], abs=1e-6), case["name"]
        if np.isfinite(case["kld_src"]):
            assert kl_to_target(p, t) == pytest.approx(case["kld_src"], rel=1e-9, abs=1e-12), case["name"]


def test_bad_inputs_name_the_problem():
    _, ours = models(6)
    good = comfy(smooth_image(1, (224, 224)), smooth_image(2, (224, 224)))
    nan = good.clone()
    nan[1, 3, 4, 0] = float("nan")
    with pytest.raises(ValueError, match="edits: image 1 holds NaN"):
        emo_core.esmi(ours, good, nan, "awe")
    with pytest.raises(ValueError, match="sources: image 1 holds NaN"):
        emo_core.esmi(ours, nan, good, "awe")
    with pytest.raises(ValueError, match="3 images for 2 sources"):
        emo_core.esmi(ours, good, torch.cat([good, good[:1]]), "awe")
    with pytest.raises(ValueError, match="pair 1: 'joy' is not one of"):
        emo_core.esmi(ours, good, good, ["awe", "joy"])
    with pytest.raises(ValueError, match="3 given for 2 pairs"):
        emo_core.esmi(ours, good, good, ["awe", "awe", "awe"])


def test_works_under_inference_mode_as_in_comfyui():
    """ComfyUI executes nodes in torch.inference_mode, with the predictor loaded there too."""
    source, edit = comfy(smooth_image(1, (200, 240))), comfy(smooth_image(2, (224, 224)))
    _, ours = models(7)
    expected = emo_core.esmi(ours, source, edit, "fear")
    with torch.inference_mode():
        _, loaded = models(7)
        assert torch.equal(emo_core.esmi(loaded, source.clone(), edit.clone(), "fear"), expected)
