"""LoRA adapters (emo_core.training.lora) on a small transformer block in the SD key layout: a fresh adapter is an
exact no-op, only the adapters train, the update is the low-rank formula, merging equals the unmerged forward, and
detaching restores the module. (That ComfyUI's LoraLoader reads the saved keys is checked against the real host in
tests/integration/test_editor_trainer.py.)"""

import pytest
import torch
from torch import nn

from emo_core.training.lora import (
    DEFAULT_TARGETS,
    attach_lora,
    detach_lora,
    load_lora_state_dict,
    lora_parameters,
    lora_state_dict,
)


class Attention(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.to_q, self.to_k, self.to_v = (nn.Linear(width, width, bias=False) for _ in range(3))
        self.to_out = nn.Sequential(nn.Linear(width, width), nn.Dropout(0.0))

    def forward(self, x):
        q, k, v = self.to_q(x), self.to_k(x), self.to_v(x)
        weights = torch.softmax(q @ k.transpose(1, 2) / q.shape[-1] ** 0.5, dim=-1)
        return self.to_out(weights @ v)


class Block(nn.Module):
    """SD 1.5's spatial transformer in miniature: 1x1-conv proj_in/out, attention, GEGLU-less feed-forward."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.norm = nn.GroupNorm(4, width)
        self.proj_in = nn.Conv2d(width, width, 1)
        self.attn1 = Attention(width)
        self.ff = nn.Module()
        self.ff.net = nn.Sequential(nn.Sequential(), nn.GELU(), nn.Linear(width * 2, width))
        self.ff.net[0].proj = nn.Linear(width, width * 2)
        self.proj_out = nn.Conv2d(width, width, 1)
        self.conv = nn.Conv2d(width, width, 3, padding=1)  # never a target (3x3)

    def forward(self, x):
        b, c, h, w = x.shape
        hidden = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        hidden = hidden + self.attn1(hidden)
        hidden = hidden + self.ff.net[2](self.ff.net[1](self.ff.net[0].proj(hidden)))
        return self.conv(x + self.proj_out(hidden.transpose(1, 2).reshape(b, c, h, w)))


def block(seed: int = 0) -> Block:
    torch.manual_seed(seed)
    return Block()


def inputs() -> torch.Tensor:
    return torch.randn(2, 16, 4, 4, generator=torch.Generator().manual_seed(1))


def randomise_up(root: nn.Module, seed: int = 3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora_parameters(root)[1::2]:
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def test_targets_are_matched_by_whole_name_parts():
    net = block()
    names = attach_lora(net, DEFAULT_TARGETS, rank=4, alpha=4.0)
    assert names == ["proj_in", "attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0", "ff.net.0.proj",
                     "ff.net.2", "proj_out"]
    detach_lora(net)
    with pytest.raises(ValueError, match="no Linear or 1x1 Conv2d"):
        attach_lora(net, ["q", "conv"], rank=1, alpha=1.0)  # "q" is no whole part; "conv" is 3x3


def test_a_fresh_lora_changes_nothing():
    net, x = block(), inputs()
    before = net(x)
    attach_lora(net, DEFAULT_TARGETS, rank=4, alpha=8.0, generator=torch.Generator().manual_seed(0))
    assert torch.equal(net(x), before)
    assert all(p.abs().sum() > 0 for p in lora_parameters(net)[0::2])  # down is random, up is zero
    assert all(p.abs().sum() == 0 for p in lora_parameters(net)[1::2])


def test_only_the_adapters_train():
    net, x = block(), inputs()
    frozen_before = {k: v.clone() for k, v in net.state_dict().items()}
    net.norm.weight.requires_grad_(False)  # an earlier choice of the caller, restored on detach
    attach_lora(net, DEFAULT_TARGETS, rank=2, alpha=2.0)
    trainable = [p for p in net.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in lora_parameters(net)}
    optimiser = torch.optim.Adam(lora_parameters(net), lr=1e-2)
    target = torch.randn_like(net(x))
    losses = []
    for _ in range(20):
        loss = (net(x) - target).pow(2).mean()
        losses.append(loss.item())
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    assert losses[-1] < 0.9 * losses[0]
    after = net.state_dict()
    for key, value in frozen_before.items():
        assert torch.equal(after[key], value), key
    detach_lora(net)
    assert set(net.state_dict()) == set(frozen_before)
    assert not net.norm.weight.requires_grad and net.norm.bias.requires_grad and net.conv.weight.requires_grad


def test_the_update_is_the_low_rank_formula():
    net = block()
    attach_lora(net, ["to_q"], rank=3, alpha=6.0)
    randomise_up(net)
    q = net.attn1.to_q
    x = torch.randn(5, 16)
    expected = x @ q.weight.T + 2.0 * (x @ q.lora_down.weight.T @ q.lora_up.weight.T)  # scale alpha / rank
    torch.testing.assert_close(q(x), expected, rtol=1e-6, atol=1e-6)


def test_merge_equals_the_unmerged_forward():
    net, x = block(), inputs()
    attach_lora(net, DEFAULT_TARGETS, rank=4, alpha=2.0)
    randomise_up(net)
    unmerged = net(x)
    assert not torch.allclose(unmerged, block()(x), atol=1e-3)  # the adapters do change the output
    detach_lora(net, merge=True)
    assert not any(hasattr(m, "lora_up") for m in net.modules())
    torch.testing.assert_close(net(x), unmerged, rtol=1e-5, atol=1e-5)


def test_detach_without_merge_restores_the_output():
    net, x = block(), inputs()
    before = net(x)
    attach_lora(net, DEFAULT_TARGETS, rank=4, alpha=2.0)
    randomise_up(net)
    detach_lora(net)
    assert torch.equal(net(x), before)
    with pytest.raises(ValueError, match="no LoRA adapters"):
        detach_lora(net)


def test_state_dict_keys_shapes_and_round_trip():
    net = block()
    attach_lora(net, DEFAULT_TARGETS, rank=4, alpha=2.0)
    randomise_up(net)
    state = lora_state_dict(net)
    assert state["diffusion_model.attn1.to_q.lora_down.weight"].shape == (4, 16)
    assert state["diffusion_model.attn1.to_q.lora_up.weight"].shape == (16, 4)
    assert state["diffusion_model.proj_in.lora_down.weight"].shape == (4, 16, 1, 1)  # 1x1 conv: kohya shapes
    assert state["diffusion_model.proj_in.lora_up.weight"].shape == (16, 4, 1, 1)
    assert float(state["diffusion_model.ff.net.2.alpha"]) == 2.0
    assert len(state) == 8 * 3 and all(v.dtype == torch.float32 for v in state.values())
    other = block()
    attach_lora(other, DEFAULT_TARGETS, rank=4, alpha=2.0)
    load_lora_state_dict(other, state)
    x = inputs()
    torch.testing.assert_close(other(x), net(x))
    with pytest.raises(ValueError, match="do not match"):
        load_lora_state_dict(other, {k: v for k, v in state.items() if "to_q" not in k})


def test_bad_settings_are_refused():
    net = block()
    with pytest.raises(ValueError, match="rank"):
        attach_lora(net, DEFAULT_TARGETS, rank=0, alpha=1.0)
    with pytest.raises(ValueError, match="alpha"):
        attach_lora(net, DEFAULT_TARGETS, rank=1, alpha=float("nan"))
    attach_lora(net, DEFAULT_TARGETS, rank=1, alpha=1.0)
    with pytest.raises(ValueError, match="already"):
        attach_lora(net, DEFAULT_TARGETS, rank=1, alpha=1.0)


def test_adapters_follow_a_half_precision_host():
    """A frozen fp16 module (ComfyUI's published-fp16 UNet) keeps fp16 outputs; the adapter computes in fp32."""
    layer = nn.Linear(8, 8).half()
    root = nn.Sequential()
    root.to_q = layer
    attach_lora(root, ["to_q"], rank=2, alpha=2.0)
    randomise_up(root)
    x = torch.randn(3, 8).half()
    out = root.to_q(x)
    assert out.dtype == torch.float16
    expected = (x.float() @ layer.weight.float().T + layer.bias.float()
                + (x.float() @ layer.lora_down.weight.T @ layer.lora_up.weight.T))
    torch.testing.assert_close(out.float(), expected, rtol=2e-3, atol=2e-3)


def test_a_deep_copy_carries_its_own_adapters():
    """Merging a copy (how a trainer may export) leaves the original's adapters working and removable."""
    import copy

    net, x = block(), inputs()
    attach_lora(net, DEFAULT_TARGETS, rank=2, alpha=2.0)
    randomise_up(net)
    adapted = net(x)
    twin = copy.deepcopy(net)
    detach_lora(twin, merge=True)
    torch.testing.assert_close(twin(x), adapted, rtol=1e-5, atol=1e-5)
    assert torch.equal(net(x), adapted)
    detach_lora(net)
    torch.testing.assert_close(net(x), block()(x))
