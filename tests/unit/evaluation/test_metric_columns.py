"""The optional columns of ``python -m emo_core evaluate``: Emo-A (EmoEditor's predictor against the nearest V-A
centre's class), CLIP-IQA (torchmetrics on a local Hugging Face CLIP folder) and LPIPS-Continuous (lpips on a local
AlexNet file), each against a direct computation, offline, on seeded random models written at test time."""

import json
import socket

import lpips
import numpy as np
import pytest
import torch
import torchvision
from paths import ROOT
from PIL import Image
from tiny_critic import random_head, save_clip, save_head, tiny_clip

import emo_core
from emo_core.emoeditor.continuous import EMOTION_VA_CENTRES
from emo_core.emoeditor.emotions import EMOTIONS
from emo_core.emoeditor.loaders import save_safetensors
from emo_core.emoeditor.predictor import EmotionPredictor, preprocess
from emo_core.evaluation.cli import main
from emo_core.evaluation.folder import cell_file_name
from emo_core.evaluation.iqa import (
    ColumnUnavailable,
    FeatureTensors,
    clip_iqa_scores,
    grid_neighbours,
    load_clip_iqa,
    load_lpips,
    lpips_distances,
)
from emo_core.evaluation.metrics import protocol_points

TOKENIZER = ROOT / ".host" / "comfyui" / "comfy" / "sd1_tokenizer"


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else args}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def seeded_predictor(seed: int = 0) -> EmotionPredictor:
    """A random predictor whose top class varies with the image (a wide random fc)."""
    torch.manual_seed(seed)
    model = EmotionPredictor()
    with torch.no_grad():
        model.fc.weight.normal_(0, 5.0)
        model.fc.bias.zero_()
    return model.eval()


def images(seed: int, count: int, height: int = 48, width: int = 64) -> torch.Tensor:
    """ComfyUI IMAGEs that are exact 8-bit values (as loaded from PNG files)."""
    generator = torch.Generator().manual_seed(seed)
    u8 = torch.randint(0, 256, (count, height, width, 3), generator=generator, dtype=torch.uint8)
    return u8.float() / 255


# --- Emo-A --------------------------------------------------------------------------------------------------------


def test_va_target_class_on_and_between_the_centres():
    for name, (v, a) in zip(EMOTIONS, EMOTION_VA_CENTRES.tolist(), strict=True):
        assert emo_core.va_target_class(v, a) == name
    generator = np.random.default_rng(5)
    centres = EMOTION_VA_CENTRES.numpy()
    for v, a in generator.uniform(-3, 3, size=(300, 2)):  # brute force: the nearest centre
        assert emo_core.va_target_class(v, a) == EMOTIONS[int(np.argmin(((centres - [v, a]) ** 2).sum(1)))]
    sadness, disgust = (EMOTION_VA_CENTRES[EMOTIONS.index(n)] for n in ("sadness", "disgust"))
    middle = (sadness + disgust) / 2
    towards = (disgust - sadness) * 0.01
    assert emo_core.va_target_class(*(middle - towards).tolist()) == "sadness"
    assert emo_core.va_target_class(*(middle + towards).tolist()) == "disgust"
    assert emo_core.va_target_class(3, 3) == "excitement" and emo_core.va_target_class(-3, -3) == "sadness"


def test_emotion_accuracy_equals_a_hand_count():
    predictor = seeded_predictor(1)
    batch = images(2, 12)
    top = [EMOTIONS[int(i)] for i in predictor(preprocess(batch, resize="pil")).argmax(1)]  # by hand
    assert len(set(top)) >= 2, "the seeded predictor should not predict one class for every image"
    targets = [top[i] if i % 3 == 0 else EMOTIONS[(EMOTIONS.index(top[i]) + 1) % 8] for i in range(12)]
    got = emo_core.emotion_accuracy(predictor, batch, targets)
    assert got == {"accuracy": 4 / 12, "hits": 4, "count": 12, "top": top}
    one = emo_core.emotion_accuracy(predictor, [batch[:5], batch[5], images(3, 2, 80, 40)], top[0])
    assert one["count"] == 8 and one["top"][:6] == top[:6] and one["hits"] == sum(t == top[0] for t in one["top"])
    with pytest.raises(ValueError, match="12 images but 2 targets"):
        emo_core.emotion_accuracy(predictor, batch, ["awe", "fear"])
    with pytest.raises(ValueError, match="unknown emotion"):
        emo_core.emotion_accuracy(predictor, batch, "joy")


# --- CLIP-IQA -----------------------------------------------------------------------------------------------------


def save_hf_clip(folder, seed: int = 4):
    """A tiny random CLIP in the Hugging Face layout: config, weights, tokenizer and processor files."""
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    model = tiny_clip(seed)
    model.save_pretrained(folder)
    tokenizer = CLIPTokenizer(str(TOKENIZER / "vocab.json"), str(TOKENIZER / "merges.txt"))
    CLIPProcessor(image_processor=CLIPImageProcessor(), tokenizer=tokenizer).save_pretrained(folder)
    return model


@pytest.fixture(scope="module")
def hf_clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf_clip") / "clip-vit-base-patch32"
    return folder, save_hf_clip(folder)


def test_clip_iqa_equals_torchmetrics_offline(hf_clip, no_network):
    from torchmetrics.functional.multimodal import clip_image_quality_assessment
    from transformers import CLIPModel, CLIPProcessor

    folder, model = hf_clip
    metric = load_clip_iqa(folder)
    batch = images(6, 3, 90, 70)
    got = clip_iqa_scores(metric, batch)
    assert got.shape == (3,) and ((got > 0) & (got < 1)).all()

    def direct_clip():  # transformers 5 returns model outputs where torchmetrics 1.9 wants tensors
        return FeatureTensors(CLIPModel.from_pretrained(folder, local_files_only=True)), \
            CLIPProcessor.from_pretrained(folder)

    direct = clip_image_quality_assessment(batch.permute(0, 3, 1, 2) * 255, model_name_or_path=direct_clip,
                                           data_range=1.0, prompts=("quality",))
    torch.testing.assert_close(got, direct.double(), atol=1e-6, rtol=0)
    # the processor must see 8-bit values: the same scores (within resizing) from PIL images through transformers
    processor = CLIPProcessor.from_pretrained(folder)
    pil = [Image.fromarray((x * 255).round().byte().numpy()) for x in batch]
    with torch.no_grad():
        image = model.get_image_features(processor(images=pil, return_tensors="pt")["pixel_values"])
        text = processor(text=["Good photo.", "Bad photo."], return_tensors="pt", padding=True)
        anchors = model.get_text_features(text["input_ids"], text["attention_mask"])
    image = torch.as_tensor(getattr(image, "pooler_output", image))
    anchors = torch.as_tensor(getattr(anchors, "pooler_output", anchors))
    cos = torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(anchors, dim=-1).T
    torch.testing.assert_close(got.float(), (100 * cos).softmax(-1)[:, 0], atol=0.01, rtol=0)


def test_clip_iqa_missing_or_wrong_folder_is_a_reason(tmp_path, no_network):
    with pytest.raises(ColumnUnavailable, match="no such file or folder"):
        load_clip_iqa(tmp_path / "openai" / "clip-vit-base-patch32")
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "model.safetensors").write_bytes(b"x")
    with pytest.raises(ColumnUnavailable, match="not a Hugging Face CLIP folder.*config.json"):
        load_clip_iqa(tmp_path / "weights" / "model.safetensors")
    columns = emo_core.evaluation.columns.load_columns(iqa_clip=tmp_path / "nothing")
    assert columns.clip_iqa is None and columns.reasons["CLIP-IQA"].startswith("not measured: ")
    assert "\n" not in columns.reasons["CLIP-IQA"] and "no --predictor given" in columns.reasons["Emo-A"]


# --- LPIPS-Continuous ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def alexnet_file(tmp_path_factory):
    torch.manual_seed(8)
    net = torchvision.models.alexnet(weights=None).eval()
    path = tmp_path_factory.mktemp("alexnet") / "alexnet-owt-7be5be79.pth"
    torch.save(net.state_dict(), path)
    return path, net


def reference_lpips(net, monkeypatch):
    """lpips.LPIPS built the package's own way, its torchvision AlexNet being ``net`` (as if downloaded)."""
    monkeypatch.setattr(lpips.pretrained_networks.tv, "alexnet", lambda *args, **kwargs: net)
    return lpips.LPIPS(net="alex", version="0.1", verbose=False).eval()


def test_grid_neighbours():
    pairs = grid_neighbours(protocol_points())
    assert len(pairs) == 40 and sum(axis == "valence" for *_, axis in pairs) == 20
    points = protocol_points()
    for i, j, axis in pairs:
        (v1, a1), (v2, a2) = points[i], points[j]
        assert (v2 - v1, a2 - a1) == ((1.5, 0.0) if axis == "valence" else (0.0, 1.5))
    assert grid_neighbours([(0, 0), (3, 0), (0, 1)]) == [(0, 1, "valence"), (0, 2, "arousal")]
    with pytest.raises(ValueError, match="several images"):
        grid_neighbours([(0, 0), (0.0, 0.0)])


def test_lpips_equals_the_package_on_neighbour_pairs(alexnet_file, monkeypatch, no_network):
    path, net = alexnet_file
    model = load_lpips(path)
    first, second = images(9, 10, 64, 64), images(10, 10, 64, 64)
    got = lpips_distances(model, first, second)
    reference = reference_lpips(net, monkeypatch)
    with torch.no_grad():
        direct = torch.cat([reference(a.permute(2, 0, 1)[None], b.permute(2, 0, 1)[None], normalize=True).reshape(1)
                            for a, b in zip(first, second, strict=True)])
    torch.testing.assert_close(got, direct.double(), atol=1e-6, rtol=1e-5)
    assert (got > 0).all() and lpips_distances(model, first[:2], first[:2]).abs().max() < 1e-6


def test_lpips_missing_or_wrong_file_is_a_reason(tmp_path, no_network):
    with pytest.raises(ColumnUnavailable, match="no such file"):
        load_lpips(tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(EmotionPredictor().state_dict(), tmp_path / "resnet.pth")
    with pytest.raises(ColumnUnavailable, match="not a torchvision AlexNet"):
        load_lpips(tmp_path / "resnet.pth")


# --- the command line ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def grid_folder(tmp_path_factory, hf_clip):
    """Critic files, the optional columns' files, and a folder: one prompt's 5x5 grid, another prompt's 3 cells."""
    base = tmp_path_factory.mktemp("columns")
    files = {"clip": save_clip(tiny_clip(seed=4), base / "clip.safetensors"),
             "valence": save_head(random_head(11), base / "v.pth"),
             "arousal": save_head(random_head(12), base / "a.pth"), "iqa": hf_clip[0]}
    predictor = seeded_predictor(2)
    files["predictor"] = base / "emo_predictor.safetensors"
    save_safetensors(predictor, files["predictor"])
    folder = base / "grid"
    folder.mkdir()
    generator = np.random.default_rng(1)
    cells = [(v, a, "people dancing") for v, a in protocol_points()]
    cells += [(-3.0, 0.0, "a storm"), (-1.5, 0.0, "a storm"), (3.0, 3.0, "a storm")]
    written = []
    for v, a, prompt in cells:
        u8 = generator.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)
        name = cell_file_name(v, a, prompt)
        Image.fromarray(u8).save(folder / name)
        written.append((name, v, a, prompt, torch.from_numpy(u8).float() / 255))
    return files, folder, written, predictor


def run(capsys, files, folder, *extra):
    code = main([str(folder), "--clip", str(files["clip"]), "--valence-head", str(files["valence"]),
                 "--arousal-head", str(files["arousal"]), "--tokenizer", str(TOKENIZER), "--overwrite", *extra])
    out = capsys.readouterr()
    return code, out.out, out.err, json.loads((folder / "emotion_metrics.json").read_text())


def test_cli_columns_end_to_end(grid_folder, alexnet_file, capsys, monkeypatch, no_network):
    files, folder, cells, predictor = grid_folder
    code, out, err, report = run(capsys, files, folder, "--predictor", str(files["predictor"]), "--iqa-clip",
                                 str(files["iqa"]), "--lpips-backbone", str(alexnet_file[0]))
    assert code == 0, err
    summary, by_file = report["summary"], {r["file"]: r for r in report["images"]}
    pixels = torch.stack([x for *_, x in cells])
    targets = [emo_core.va_target_class(v, a) for _, v, a, _, _ in cells]
    expected = emo_core.emotion_accuracy(predictor, pixels, targets)
    assert [by_file[name]["emotion"] for name, *_ in cells] == expected["top"]
    assert (summary["emo_a_hits"], summary["emo_a_count"]) == (expected["hits"], 28)
    assert summary["emo_a"] == pytest.approx(expected["accuracy"])
    iqa = clip_iqa_scores(load_clip_iqa(files["iqa"]), pixels)
    assert [by_file[name]["clip_iqa"] for name, *_ in cells] == pytest.approx(iqa.tolist(), abs=1e-6)
    assert summary["clip_iqa_mean"] == pytest.approx(iqa.mean().item(), abs=1e-6)
    assert summary["clip_iqa_std"] == pytest.approx(iqa.std(correction=0).item(), abs=1e-6)

    reference = reference_lpips(alexnet_file[1], monkeypatch)
    index = {name: i for i, (name, *_) in enumerate(cells)}
    direct = []
    for group in (range(25), range(25, 28)):
        points = [(cells[i][1], cells[i][2]) for i in group]
        for i, j, _ in grid_neighbours(points):
            a, b = (pixels[list(group)[k]].permute(2, 0, 1)[None] for k in (i, j))
            with torch.no_grad():
                direct.append(reference(a, b, normalize=True).item())
    assert len(direct) == 41 and summary["lpips_continuous_pairs"] == 41  # 40 in the 5x5, 1 in the partial grid
    got = sorted(p["lpips"] for p in report["lpips_pairs"])
    assert got == pytest.approx(sorted(direct), abs=1e-6)
    assert summary["lpips_continuous_mean"] == pytest.approx(np.mean(direct), abs=1e-6)
    assert summary["lpips_continuous_std"] == pytest.approx(np.std(direct), abs=1e-6)
    assert all((index[p["a"]] < 25) == (index[p["b"]] < 25) for p in report["lpips_pairs"])  # within a prompt
    assert report["not_measured"] == {}
    assert "| Emo-A | CLIP-IQA | LPIPS-Continuous |" in out
    assert f"{100 * summary['emo_a']:.2f} % ({summary['emo_a_hits']}/28)" in out
    assert f"{summary['lpips_continuous_mean']:.3f} ± {summary['lpips_continuous_std']:.3f}" in out


def test_cli_without_or_with_missing_files_gives_reasons(grid_folder, tmp_path, capsys, no_network):
    files, folder, _, _ = grid_folder
    code, out, err, report = run(capsys, files, folder)
    assert code == 0, err
    assert report["not_measured"] == {"Emo-A": "not measured: no --predictor given",
                                      "CLIP-IQA": "not measured: no --iqa-clip given",
                                      "LPIPS-Continuous": "not measured: no --lpips-backbone given"}
    assert "Emo-A" not in out.splitlines()[0] and "CLIP-IQA: not measured: no --iqa-clip given" in out
    assert not {"emo_a", "clip_iqa_mean", "lpips_continuous_mean"} & set(report["summary"])
    missing = tmp_path / "none"
    code, out, err, report = run(capsys, files, folder, "--predictor", str(missing / "emo_predictor.pt"),
                                 "--iqa-clip", str(missing / "clip"), "--lpips-backbone", str(missing / "alex.pth"))
    assert code == 0, err
    for column in ("Emo-A", "CLIP-IQA", "LPIPS-Continuous"):
        reason = report["not_measured"][column]
        assert reason.startswith("not measured: ") and str(missing) in reason and "no such file" in reason
        assert f"{column}: {reason}" in out and f"warning: {column}: {reason}" in err
    assert report["summary"]["images"] == 28 and "v_mean" in report["summary"]
