"""Argument checks shared by emo_core's algorithms, commands and the nodes: one wording for a bad number or device,
naming it."""

from __future__ import annotations

import math

import torch


def finite_number(name: str, value) -> float:
    """``value`` as a finite float, or a ValueError naming ``name`` (NaN compares False with everything, so a NaN
    setting would silently change what a loop does)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ValueError(f"{name}: {value} is not a finite number")
    return number


def device_problem(name: str | None, option: str = "--device") -> str | None:
    """Why ``name`` cannot run a model here (not a torch device, absent, or holding no data), or None (also for no
    name: the default device). Found by placing a tensor on it, before any work."""
    if name is None:
        return None
    try:
        device = torch.device(name)
        if device.type == "meta":
            return f"{option} {name!r}: meta tensors hold no data; use cpu, cuda, cuda:N or mps"
        torch.zeros(1, device=device).add_(1)
    except Exception as exc:  # torch says "no such device" with RuntimeError, AssertionError, ... by backend
        why = " ".join(str(exc).split())[:200]
        return (f"{option} {name!r}: not a usable device here ({type(exc).__name__}: {why}); use cpu, cuda, "
                "cuda:N or mps")
    return None
