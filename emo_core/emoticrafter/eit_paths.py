"""Which exact cross-attention the EIT's default (fast) path runs: the rule, and the measurements behind it.

Both choices compute the same function (golden tests): ``sdpa`` projects every row's queries and outputs through
``c_q`` / ``c_proj`` and attends over the 16 condition tokens with ``scaled_dot_product_attention``; ``folded``
first folds each *distinct* condition context into two (n, H·T) matrices (``ConditionedAttention.fold``), then
does two narrow products per row. Per cross-attention, with B rows, U distinct contexts (distinct arousal or valence
values of the call), L tokens per row, width n, H heads, T = 16 condition tokens, counted in multiply-adds:

    sdpa   = g·(2·B·L·n² + 2·B·T·n² + 2·B·L·T·n) + fixed_sdpa      (c_q + c_proj, c_z per row, attention)
    folded = s·U·4·T·n² + a·2·B·L·n·H·T + fixed_folded             (fold per context; two products per row)

``g``, ``s``, ``a`` are the relative cost of one multiply-add in each kind of product on the device (``g`` = 1: the
large projections), ``fixed_*`` a per-call cost in multiply-add equivalents. The rule: **folded iff its estimate is
below SDPA's, and never with autograd**. It is a pure function of the device type and the shapes: the same device
and shape always take the same path (no timing at run time).

Constants (``COSTS``):
- CPU, measured: on a 2-core AMD EPYC (Zen 4, AVX-512), torch 2.14, 2 threads, full size (n 768, H 12, L 77),
  minimum of 9 interleaved repeats of one cross-attention, load average ~4 (other tests running): SDPA 1.35 ms per
  row at B=25 (2.3 ms at B=1); fold 1.07 ms per context (37.7 M multiply-adds: s = 2.35), folded products 0.30 ms
  per row (22.7 M: a = 1.1). Measured vs predicted time folded / SDPA: B=1 0.71 / 0.72; B=25 one context 0.24 /
  0.26; B=25, U=5 (a 5x5 grid) 0.37 / 0.38; B=25, U=25 0.96 / 1.00. So on the CPU the fold pays whenever some
  condition values repeat (U < B) and ties at U = B; at the published width it always beats per-row projections
  for a single prompt. Whole-model figures: ``python -m bench eit``. The earlier rule ("folded for every inference
  call") also ran a costlier fold: it broadcast-copied the query and output weights once per context (2.5x slower
  at U = 25) and gave every row its own copy of the folded matrices (1.7x slower than one GEMM per context at U = 5);
  both are gone. Caution for re-measuring: under CPU contention (load ~4 on 2 cores) a full-size B=25 forward of the
  fast path swung from 2.3 s to 11-19 s and the plain path from 3.4 s to 5-9 s, so loaded figures can invert the
  ranking; the constants come from minima, the bench reports medians with the load average.
- Autograd (training, gradient-based V-A search): SDPA. The backward of the fold's per-head products runs on
  strided views (CPU, load ~4: folded ~2.6x slower than SDPA at the training shape B = U = 32). OPEN: the quiet
  whole-model bench (load <= 2, its own 2 threads included) then measured the B=32 training step folded 9.6 s vs
  SDPA 10.5 s, so the autograd clause may be wrong on this CPU; re-measure before changing it.
- CUDA and other accelerators: NOT measured (no GPU in that session). Assumed: narrow products less efficient than
  on the CPU (s = 4, a = 1.5) and ~5 vs ~12 kernel launches per call at ~100 M multiply-add equivalents each, so
  B=1 takes SDPA, and grids with repeated values fold. Check with ``python -m bench eit --device cuda``.
The fixed terms stand for the poor efficiency of small products (B = 1); at the tiny widths of the test models they
dominate, so those fold too (speed is irrelevant there; the golden tests force each path).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PathCosts:
    """Relative cost per multiply-add (``gemm`` = 1) and fixed per-call cost (multiply-add equivalents)."""

    fold_setup: float
    fold_apply: float
    fixed_sdpa: float
    fixed_folded: float
    measured: bool


COSTS = {
    "cpu": PathCosts(fold_setup=2.35, fold_apply=1.1, fixed_sdpa=80e6, fixed_folded=25e6, measured=True),
    "cuda": PathCosts(fold_setup=4.0, fold_apply=1.5, fixed_sdpa=500e6, fixed_folded=1200e6, measured=False),
}


def costs_for(device_type: str) -> PathCosts:
    """The CPU table for the CPU; the (assumed) CUDA table for every accelerator."""
    return COSTS["cpu" if device_type == "cpu" else "cuda"]


def cross_costs(device_type: str, rows: int, contexts: int, length: int, width: int, heads: int, tokens: int,
                ) -> tuple[float, float]:
    """(SDPA, folded) estimated cost of one cross-attention, in multiply-add equivalents (module docstring)."""
    c = costs_for(device_type)
    sdpa = 2 * rows * length * width ** 2 + 2 * rows * tokens * width ** 2 + 2 * rows * length * tokens * width
    folded = (c.fold_setup * contexts * 4 * tokens * width ** 2
              + c.fold_apply * 2 * rows * length * width * heads * tokens)
    return sdpa + c.fixed_sdpa, folded + c.fixed_folded


def use_folded(device_type: str, rows: int, contexts: int, length: int, width: int, heads: int, tokens: int,
               grad: bool) -> bool:
    """The default cross-attention: folded iff its estimated cost is below SDPA's, never with autograd."""
    if grad:
        return False
    sdpa, folded = cross_costs(device_type, rows, contexts, length, width, heads, tokens)
    return folded < sdpa
