"""LoRA adapters on any torch module tree, saved in the key format ComfyUI's stock LoraLoader reads.

``attach_lora`` gives every targeted ``nn.Linear`` (and 1x1 ``nn.Conv2d``) two small child modules, ``lora_down``
(rank x in, seeded Kaiming-uniform) and ``lora_up`` (out x rank, zeros), and a forward hook adding
``up(down(x)) * alpha / rank`` to the module's output. The wrapped modules keep their names and classes (ComfyUI's
own ops subclasses stay what they are), so the adapter keys are ``<module name>.lora_down.weight`` /
``.lora_up.weight`` / ``.alpha``: with the prefix ``diffusion_model.`` on a ComfyUI UNetModel these are the
"generic" LoRA keys of ``comfy.lora.model_lora_keys_unet`` (the same scale alpha / rank, the same 1x1-conv shapes).

Because ``up`` starts at zero, a fresh LoRA changes nothing. Every other parameter of the root is frozen while the
adapters are attached; ``detach_lora`` removes them (optionally merging ``up @ down * scale`` into the weights) and
gives the other parameters back their earlier ``requires_grad``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

# What a "lora" run targets by default: the attention projections and feed-forward of every transformer block, and
# the blocks' input/output projections (the usual SD LoRA set; names as in diffusers and in ComfyUI's UNetModel).
ATTENTION_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
DEFAULT_TARGETS = (*ATTENTION_TARGETS, "ff.net.0.proj", "ff.net.2", "proj_in", "proj_out")

_STATE = "_emo_lora"  # attribute on the root: {"frozen": {param name: requires_grad before attaching}}
_ATTRS = ("lora_down", "lora_up", "lora_alpha", "lora_scale")


def _matches(name: str, targets: Sequence[str]) -> bool:
    return any(name == t or name.endswith("." + t) for t in targets)


def _adaptable(module: nn.Module) -> bool:
    if isinstance(module, nn.Linear):
        return True
    return isinstance(module, nn.Conv2d) and tuple(module.kernel_size) == (1, 1) and module.groups == 1


def _lora_delta(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
    """The forward hook: the frozen output plus the low-rank update (computed in the adapter's dtype)."""
    x = inputs[0]
    down = module.lora_down
    delta = module.lora_up(down(x.to(down.weight.dtype))) * module.lora_scale
    return output + delta.to(output.dtype)


def attach_lora(root: nn.Module, targets: Sequence[str], rank: int, alpha: float,
                generator: torch.Generator | None = None) -> list[str]:
    """Wrap every Linear / 1x1 Conv2d of ``root`` whose qualified name ends with one of ``targets`` (whole name
    parts: "to_q" matches "attn1.to_q", not "x_to_q"); freeze every other parameter of ``root``. Returns the wrapped
    module names. The adapters are float32, on the wrapped weight's device; ``generator``
    (a CPU generator) seeds their initialisation."""
    if rank < 1:
        raise ValueError(f"LoRA rank must be at least 1, got {rank}")
    if not math.isfinite(alpha) or alpha <= 0:
        raise ValueError(f"LoRA alpha must be a positive finite number, got {alpha}")
    if not targets:
        raise ValueError("no LoRA target modules given (e.g. to_q, to_k, to_v, to_out.0)")
    if hasattr(root, _STATE):
        raise ValueError("this module already has LoRA adapters attached; detach them first")
    chosen = [(name, module) for name, module in root.named_modules()
              if name and _matches(name, targets) and _adaptable(module)]
    if not chosen:
        raise ValueError(f"no Linear or 1x1 Conv2d module's name ends with one of {', '.join(targets)}")
    frozen = {name: p.requires_grad for name, p in root.named_parameters()}
    root.requires_grad_(False)
    for _, module in chosen:
        # built and initialised on the CPU (one seeded CPU generator for any device), then moved beside the weight
        if isinstance(module, nn.Linear):
            down = nn.Linear(module.in_features, rank, bias=False)
            up = nn.Linear(rank, module.out_features, bias=False)
        else:
            down = nn.Conv2d(module.in_channels, rank, 1, bias=False)
            up = nn.Conv2d(rank, module.out_channels, 1, bias=False)
        nn.init.kaiming_uniform_(down.weight, a=math.sqrt(5), generator=generator)  # nn.Linear's own init
        nn.init.zeros_(up.weight)  # a fresh LoRA changes nothing
        module.lora_down, module.lora_up = down.to(module.weight.device), up.to(module.weight.device)
        module.lora_alpha, module.lora_scale = float(alpha), float(alpha) / rank
        module.register_forward_hook(_lora_delta)  # found again by identity: survives copy.deepcopy of the root
    setattr(root, _STATE, {"frozen": frozen})
    return [name for name, _ in chosen]


def _adapted(root: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(name, m) for name, m in root.named_modules() if hasattr(m, "lora_scale")]


def lora_parameters(root: nn.Module) -> list[nn.Parameter]:
    """The adapters' parameters (down then up of each wrapped module, in module order): what the optimiser trains."""
    return [p for _, m in _adapted(root) for p in (m.lora_down.weight, m.lora_up.weight)]


def lora_state_dict(root: nn.Module, key_prefix: str = "diffusion_model.") -> dict[str, torch.Tensor]:
    """``<prefix><module>.lora_up.weight`` / ``.lora_down.weight`` / ``.alpha`` (float32, CPU, contiguous)."""
    adapted = _adapted(root)
    if not adapted:
        raise ValueError("no LoRA adapters are attached to this module")
    state = {}
    for name, module in adapted:
        key = f"{key_prefix}{name}"
        state[f"{key}.lora_up.weight"] = module.lora_up.weight.detach().float().cpu().contiguous()
        state[f"{key}.lora_down.weight"] = module.lora_down.weight.detach().float().cpu().contiguous()
        state[f"{key}.alpha"] = torch.tensor(module.lora_alpha, dtype=torch.float32)
    return state


def load_lora_state_dict(root: nn.Module, state: dict[str, torch.Tensor], key_prefix: str = "diffusion_model.") -> None:
    """Copy saved adapter weights (``lora_state_dict``'s keys) into the attached adapters; every key must match."""
    own = lora_state_dict(root, key_prefix)
    if set(own) != set(state):
        missing, extra = sorted(set(own) - set(state)), sorted(set(state) - set(own))
        raise ValueError(f"LoRA keys do not match the attached adapters (missing {missing[:3]}, unexpected "
                         f"{extra[:3]})")
    for name, module in _adapted(root):
        key = f"{key_prefix}{name}"
        if float(state[f"{key}.alpha"]) != module.lora_alpha:
            raise ValueError(f"{key}.alpha is {float(state[f'{key}.alpha'])}, the adapters use {module.lora_alpha}")
        with torch.no_grad():
            module.lora_up.weight.copy_(state[f"{key}.lora_up.weight"])
            module.lora_down.weight.copy_(state[f"{key}.lora_down.weight"])


def lora_weight_delta(module: nn.Module) -> torch.Tensor:
    """``up @ down * scale`` in the wrapped weight's shape (float32): what merging adds."""
    up, down = module.lora_up.weight.float(), module.lora_down.weight.float()
    delta = (up.flatten(1) @ down.flatten(1)) * module.lora_scale
    return delta.reshape(module.weight.shape)


def detach_lora(root: nn.Module, merge: bool = False) -> None:
    """Remove the adapters (``merge``: first add their update into the wrapped weights) and restore every other
    parameter's ``requires_grad`` as it was before ``attach_lora``."""
    state = getattr(root, _STATE, None)
    if state is None:
        raise ValueError("no LoRA adapters are attached to this module")
    for _, module in _adapted(root):
        if merge:
            with torch.no_grad():
                weight = module.weight
                weight.copy_((weight.float() + lora_weight_delta(module).to(weight.device)).to(weight.dtype))
        for key, hook in list(module._forward_hooks.items()):
            if hook is _lora_delta:
                del module._forward_hooks[key]
        for attr in _ATTRS:
            delattr(module, attr)
    for name, param in root.named_parameters():
        param.requires_grad_(state["frozen"].get(name, param.requires_grad))
    delattr(root, _STATE)
