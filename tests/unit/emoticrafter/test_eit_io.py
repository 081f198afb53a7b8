"""EIT checkpoint loading, conversion, saving and the errors users see for wrong files."""

import re

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from emo_core import load_eit, save_eit
from emo_core.emoticrafter.convert import main as convert_main
from emo_core.emoticrafter.eit_io import convert_published_state_dict, is_eit_state_dict
from emo_core.errors import CheckpointError


@pytest.fixture(scope="module")
def tiny_a(golden):
    return golden / "eit" / "tinyA"


@pytest.fixture(scope="module")
def published_sd(tiny_a):
    return torch.load(tiny_a / "weights_module_prefixed.pth", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def case(tiny_a):
    return load_file(tiny_a / "case_b5_mixed.safetensors")


def forward(model, case):
    with torch.no_grad():
        return model(case["inputs_embeds"], valence=case["valence"], arousal=case["arousal"])


def test_conversion_drops_unused_weights(published_sd):
    converted, report = convert_published_state_dict(published_sd)
    assert report.stripped_prefix and list(report.dropped) == ["wte.weight"]
    assert len(report.sliced) == 2 * 2 * 3  # 2 layers x 3 attentions x (weight, bias)
    assert not any(key.startswith("module.") or ".c_attn." in key for key in converted)
    full = published_sd["module.h.1.attn_v.c_attn.weight"]
    assert torch.equal(converted["h.1.attn_v.c_q.weight"], full[:, :64])
    assert is_eit_state_dict(published_sd) and is_eit_state_dict(converted)
    assert not is_eit_state_dict({"model.diffusion_model.out.2.weight": torch.zeros(1)})


def test_round_trip_keeps_outputs_and_heads(tiny_a, case, tmp_path):
    model = load_eit(tiny_a / "weights_module_prefixed.pth", heads=4)
    path = save_eit(model, tmp_path / "eit.safetensors", extra_metadata={"note": "test"})
    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
        assert not any("c_attn" in key or key == "wte.weight" for key in handle.keys())  # noqa: SIM118
    assert meta["format"] == "emo-nodes.eit" and meta["version"] == "1"
    assert meta["n_head"] == "4" and meta["n_layer"] == "2" and meta["note"] == "test"
    reloaded = load_eit(path)  # heads come from the metadata (width 64 alone would give 1)
    assert reloaded.config == model.config and not reloaded.training
    assert torch.equal(forward(reloaded, case), forward(model, case))
    assert load_eit(path, heads=2).config.n_head == 2  # the explicit argument wins
    assert not list(tmp_path.glob("*.tmp"))  # the atomic write left no temp file


def test_heads_default_to_width_over_64_without_metadata(tiny_a):
    assert load_eit(tiny_a / "weights.safetensors").config.n_head == 1  # 64 / 64; the golden file has no metadata


def test_converter_command(tiny_a, case, tmp_path, capsys):
    out = tmp_path / "converted.safetensors"
    assert convert_main([str(tiny_a / "weights_module_prefixed.pth"), str(out), "--heads", "4"]) == 0
    printed = capsys.readouterr().out
    assert "dropped wte.weight (100, 64)" in printed and "query third of 12 c_attn" in printed
    assert "module." in printed and "4 heads" in printed
    reference = load_eit(tiny_a / "weights_module_prefixed.pth", heads=4)
    assert torch.equal(forward(load_eit(out), case), forward(reference, case))
    assert convert_main([str(tmp_path / "missing.pth"), str(out)]) == 1
    assert "no such file" in capsys.readouterr().err


def test_loads_to_dtype_and_keeps_parameters_trainable(tiny_a):
    model = load_eit(tiny_a / "weights.safetensors", heads=4, dtype=torch.float64)
    assert all(p.dtype == torch.float64 and p.requires_grad and p.device.type == "cpu"
               for p in model.parameters())


# --- wrong files ---------------------------------------------------------------------------------------------------

def expect_error(path, *patterns):
    with pytest.raises(CheckpointError) as info:
        load_eit(path, heads=4)
    message = str(info.value)
    assert isinstance(info.value, ValueError) and path.name in message
    for pattern in patterns:
        assert re.search(pattern, message), f"{pattern!r} not in: {message}"
    return message


def test_truncated_pth(tiny_a, tmp_path):
    data = (tiny_a / "weights_module_prefixed.pth").read_bytes()
    path = tmp_path / "truncated.pth"
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "unreadable or corrupt")


def test_truncated_and_garbage_safetensors(tiny_a, tmp_path):
    data = (tiny_a / "weights.safetensors").read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    expect_error(truncated, "unreadable or corrupt safetensors")
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"this is no model" * 10)
    expect_error(garbage, "unreadable or corrupt safetensors")


def test_missing_key(published_sd, tmp_path):
    sd = dict(published_sd)
    del sd["module.h.1.mlp.c_fc.bias"], sd["module.h.0.attn_v.c_attn.weight"]
    path = tmp_path / "missing.pth"
    torch.save(sd, path)
    expect_error(path, "2 missing keys", r"h\.1\.mlp\.c_fc\.bias", r"h\.0\.attn_v\.c_attn\.weight")


def test_wrong_shape_named_as_in_the_file(published_sd, tmp_path):
    sd = dict(published_sd)
    sd["module.ln_f.weight"] = torch.ones(65)
    sd["module.h.0.attn.c_attn.weight"] = torch.zeros(64, 195)
    path = tmp_path / "shape.pth"
    torch.save(sd, path)
    expect_error(path, "2 wrong shapes", r"ln_f\.weight \(65,\) \(expected \(64,\)\)",
                 r"h\.0\.attn\.c_attn\.weight \(64, 195\) \(expected \(64, 192\)\)")


def test_unexpected_keys(published_sd, tmp_path):
    sd = dict(published_sd)
    sd["module.h.0.extra.weight"] = torch.zeros(3)
    path = tmp_path / "extra.safetensors"
    save_file({key: value.contiguous() for key, value in sd.items()}, path)
    expect_error(path, "1 unexpected keys", r"h\.0\.extra\.weight")


def test_other_models_and_non_state_dicts(tmp_path):
    random_dict = tmp_path / "random.pth"
    torch.save({"encoder.weight": torch.zeros(2, 2), "decoder.bias": torch.zeros(2)}, random_dict)
    expect_error(random_dict, "not an EmotiCrafter Emotion Injection Transformer", "encoder.weight",
                 "xl_feature2gpt_feature.weight")
    sdxl = tmp_path / "sd_xl_base.safetensors"
    save_file({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4),
               "conditioner.embedders.0.transformer.text_model.final_layer_norm.bias": torch.zeros(4)}, sdxl)
    expect_error(sdxl, "SDXL checkpoint", "not an EmotiCrafter")
    tensor = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor)
    expect_error(tensor, "holds a Tensor, not a state dict")
    nested = tmp_path / "nested.pth"
    torch.save({"weights": {"a": torch.zeros(1)}, "epoch": 3}, nested)
    expect_error(nested, "not a plain state dict", "weights")
    expect_error(tmp_path / "absent.pth", "no such file")
