"""The EmoEditor trainer in-process on the tiny diffusers SD 1.5 ip2p: it learns, writes loadable files, resumes
the published bug fixes, and never replaces an earlier model by accident."""

import copy

import pytest
import torch
from editor_pairs_synth import write_synthetic_pairs
from editor_train_tiny import build, pair_features
from safetensors import safe_open

from emo_core.emoeditor.encoder import EmotionEncoder
from emo_core.emoeditor.kinds import peek_kind
from emo_core.emoeditor.loaders import EDITOR_KIND, load_emo_encoder
from emo_core.emoeditor.unet_layout import split_editor_checkpoint
from emo_core.training.editor.diffusers_backbone import DiffusersEditorBackbone
from emo_core.training.editor.task import EditorConfig, EditorModel, train_editor
from emo_core.training.outputs import OutputExistsError
from emo_core.weights import read_weights

CONFIG = {"batch_size": 10, "lr": 3e-4, "precision": "fp32", "checkpoint_every": 0}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    torch.set_num_threads(2)
    info = write_synthetic_pairs(tmp_path_factory.mktemp("pairs"), 24, 6, 64, seed=3)
    parts = build()
    features = pair_features(parts, info)
    return parts, features


def fresh(parts):
    torch.manual_seed(0)
    return DiffusersEditorBackbone(copy.deepcopy(parts["unet"]), parts["vae"]), EmotionEncoder()


def test_training_lowers_validation_loss_and_writes_loadable_files(data, tmp_path):
    parts, features = data
    backbone, encoder = fresh(parts)
    out, enc_out = tmp_path / "editor.safetensors", tmp_path / "encoder.safetensors"
    # 24 training pairs, batch 10: the last batch of every epoch is a partial one (4 rows; train.py crashed there)
    result = train_editor(backbone, encoder, features, EditorConfig(steps=6, **CONFIG), out_path=out,
                          encoder_path=enc_out)
    assert [r["steps"] for r in result.history] == [3, 3]
    assert result.history[-1]["val_loss"] < result.initial_val_loss * 0.99, result.history

    assert peek_kind(out) == EDITOR_KIND and peek_kind(enc_out) == "emo_encoder"
    loaded = load_emo_encoder(enc_out)
    for key, value in encoder.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value)
    state, meta = read_weights(out)
    unet_state, vae_state = split_editor_checkpoint(state, str(out))
    reloaded = copy.deepcopy(parts["unet"])
    reloaded.load_state_dict({k: v.float() for k, v in unet_state.items()}, strict=True)
    trained = backbone.unet.state_dict()
    assert all(torch.equal(unet_state[k], trained[k].half()) for k in trained)
    assert not torch.equal(unet_state["conv_in.weight"], parts["unet"].state_dict()["conv_in.weight"].half())
    assert set(vae_state) == set(parts["vae"].state_dict())
    assert meta["uncond"] == "encoder(0)" and meta["steps_completed"] == "6" and "train_config" in meta


def test_existing_outputs_are_refused_a_cancelled_overwrite_keeps_them_and_resume_is_exact(data, tmp_path):
    parts, features = data
    out, enc_out = tmp_path / "editor.safetensors", tmp_path / "encoder.safetensors"
    out.write_bytes(b"earlier model")
    enc_out.write_bytes(b"earlier encoder")
    backbone, encoder = fresh(parts)
    with pytest.raises(OutputExistsError, match="encoder.safetensors"):
        train_editor(backbone, encoder, features, EditorConfig(steps=4, **CONFIG), out_path=tmp_path / "new.st",
                     encoder_path=enc_out)
    assert not (tmp_path / "new.st.state.pt").exists()
    stops = iter([False, True])
    result = train_editor(backbone, encoder, features, EditorConfig(steps=4, **CONFIG), out_path=out,
                          encoder_path=enc_out, overwrite=True, should_stop=lambda: next(stops))
    assert result.stopped and result.global_step == 2
    assert out.read_bytes() == b"earlier model" and enc_out.read_bytes() == b"earlier encoder"
    assert (tmp_path / "editor.safetensors.state.pt.pending").is_file()  # resumable

    # resuming finishes the run exactly as an uninterrupted one, then replaces the earlier files (encoder included)
    backbone, encoder = fresh(parts)  # untrained networks: the state restores the weights and Adam's moments
    resumed = train_editor(backbone, encoder, features, EditorConfig(steps=4, **CONFIG), out_path=out,
                           encoder_path=enc_out, resume=True)
    assert not resumed.stopped and resumed.global_step == 4
    assert peek_kind(out) == EDITOR_KIND and peek_kind(enc_out) == "emo_encoder"
    assert not list(tmp_path.glob("*.pending"))
    backbone2, encoder2 = fresh(parts)
    straight = train_editor(backbone2, encoder2, features, EditorConfig(steps=4, **CONFIG))
    assert straight.history[-1]["val_loss"] == resumed.history[-1]["val_loss"]
    assert all(torch.equal(a, b) for a, b in zip(encoder.parameters(), encoder2.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(backbone.unet.parameters(), backbone2.unet.parameters(),
                                                 strict=True))


def test_lora_mode_trains_adapters_and_encoder_only(data, tmp_path):
    parts, features = data
    backbone, encoder = fresh(parts)
    base = {k: v.clone() for k, v in backbone.unet.state_dict().items()}
    out = tmp_path / "lora.safetensors"
    result = train_editor(backbone, encoder, features, EditorConfig(mode="lora", lora_rank=4, steps=3, **CONFIG),
                          out_path=out, encoder_path=tmp_path / "enc.safetensors")
    after = backbone.unet.state_dict()
    assert all(torch.equal(after[k], v) for k, v in base.items())  # the base UNet is frozen
    with safe_open(str(out), framework="pt") as handle:
        keys = list(handle.keys())  # noqa: SIM118
        assert handle.metadata()["emo_nodes.kind"] == "lora"
    assert keys and all(k.startswith("lora_unet_") for k in keys)
    assert "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight" in keys
    ups = [handle_key for handle_key in keys if handle_key.endswith("lora_up.weight")]
    with safe_open(str(out), framework="pt") as handle:
        assert any(handle.get_tensor(k).abs().sum() > 0 for k in ups)  # trained away from the zero init
    state = torch.load(result.state_path, weights_only=True)
    assert all(k.startswith("encoder.") or ".lora_" in k for k in state["model"])


def test_condition_dropout_uses_the_encoder_of_the_zero_direction(data):
    parts, features = data
    backbone, encoder = fresh(parts)
    model = EditorModel(backbone, encoder).eval()
    batch = features.fetch(torch.arange(3))
    x, t = torch.randn(3, *features.latent_shape), torch.tensor([10, 500, 990])
    with torch.no_grad():
        dropped, tokens = model(x, batch.source, t, batch.directions, torch.tensor([True, False, True]))
        zero, _ = model(x, batch.source, t, torch.zeros_like(batch.directions))
        kept, _ = model(x, batch.source, t, batch.directions)
    assert torch.allclose(dropped[[0, 2]], zero[[0, 2]], atol=1e-6)
    assert torch.allclose(dropped[1], kept[1], atol=1e-6)
    assert torch.equal(tokens, encoder(batch.directions))  # the alignment term always sees Enc(direction)


def test_gradient_checkpointing_and_published_fp16_fallback(data):
    parts, features = data
    runs, logs = [], []
    for precision, checkpointing in (("fp32", False), ("published-fp16", True)):
        backbone, encoder = fresh(parts)
        config = EditorConfig(steps=2, **{**CONFIG, "precision": precision}, gradient_checkpointing=checkpointing)
        runs.append(train_editor(backbone, encoder, features, config, log=logs.append))
    assert any("not supported on the CPU" in line for line in logs)  # published-fp16 -> fp32 on the CPU, said
    assert runs[0].history[0]["train_loss"] == pytest.approx(runs[1].history[0]["train_loss"], rel=1e-6)
    assert runs[0].history[0]["val_loss"] == pytest.approx(runs[1].history[0]["val_loss"], rel=1e-5)


def test_sdxl_width_lora_trains_the_pooled_head(tmp_path):
    """The SDXL extension: 77x2048 tokens + a 1280 pooled head feeding the UNet's text_time ADM, LoRA mode."""
    from diffusers import UNet2DConditionModel
    from diffusers_tiny_sdxl import tiny_unet

    from emo_core.training.editor.features import EditorFeatures

    torch.manual_seed(0)
    unet = UNet2DConditionModel.from_config({**tiny_unet().config, "in_channels": 8})
    backbone = DiffusersEditorBackbone(unet, latent_scale=0.13025)
    assert (backbone.token_width, backbone.pooled_width) == (2048, 1280)
    g = torch.Generator().manual_seed(1)
    latent = torch.randn(6, 4, 8, 8, generator=g)
    directions = torch.eye(8)[:6] - 0.125
    features = EditorFeatures(latent, latent.flip(-1), torch.full_like(latent, 0.01),
                              torch.randn(2, 77, 2048, generator=g), torch.tensor([0, 1, 0, 1, 0, 1]), directions,
                              val_rows=torch.tensor([4, 5]).numpy())
    encoder = EmotionEncoder(width=2048, pooled_width=1280)
    pooled_before = encoder.pooled.weight.detach().clone()
    out = tmp_path / "sdxl_lora.safetensors"
    result = train_editor(backbone, encoder, features,
                          EditorConfig(mode="lora", lora_rank=4, steps=2, batch_size=2, lr=1e-3, precision="fp32",
                                       checkpoint_every=0), out_path=out, encoder_path=tmp_path / "enc.safetensors")
    assert not torch.equal(encoder.pooled.weight, pooled_before)  # the pooled head is trained through the ADM
    assert all(torch.isfinite(torch.tensor(r["val_loss"])) for r in result.history)
    assert load_emo_encoder(tmp_path / "enc.safetensors").config.pooled_width == 1280


@pytest.mark.parametrize("bad, named", [({"weight": -1}, "weight"), ({"mode": "half"}, "mode"), ({"steps": 0}, "steps"),
                                        ({"condition_dropout": 1.0}, "condition_dropout"),
                                        ({"precision": "fp8"}, "precision"), ({"lr": float("nan")}, "lr"),
                                        ({"mode": "lora", "lora_targets": ()}, "lora_targets")])
def test_bad_settings_are_refused_by_name(bad, named):
    with pytest.raises(ValueError, match=named):
        EditorConfig(**bad)
