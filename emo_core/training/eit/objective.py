"""The EIT training objective: the target, the density-weighted loss and the published V-A density.

target = (e - n)·α + n (the scaled residual; α = 1.5 in the paper's setting). The loss is the squared error
averaged over all B·77·2048 elements. The sums are returned divided by a caller-given element count so that
data-parallel ranks holding unequal parts of one global batch add up to exactly the single-process loss.

The V-A density d(a, v):
Published (EmotiCrafter's training code): scikit-learn ``KernelDensity(kernel="gaussian", bandwidth="silverman")``
fitted on the raw (arousal, valence) of every pair (column 0 arousal, column 1 valence; train and validation rows)
and evaluated at the same points. sklearn's "silverman" bandwidth is the isotropic scalar h = (n(d+2)/4)^(-1/(d+4))
(n^(-1/6) in 2-D), not scaled by the data spread. The density is the normalised Gaussian KDE

    d(x) = 1/(n·2π·h²) · Σ_j exp(-‖x - x_j‖² / (2h²)),

re-implemented here in float64 without scikit-learn, in blocks of queries so n ≈ 40k needs tens of MB, not 13 GB.

Weight modes (``DENSITY_MODES``), how a sample's squared error is weighted in the training loss:
- ``published``: the official code divides the prediction by d and multiplies the target by the f32 reciprocal
  1/d, so the effective weight is 1/d². Across the published data d spans ~10³, so weights span ~10⁶: a few
  samples in sparse V-A corners dominate every gradient and the loss value (~10³) is not comparable to the MSE.
- ``paper``: weight 1/d, as the paper writes it.
- ``normalised`` (our recommendation): 1/d divided by its mean over the dataset, then clipped (default [0.1, 10]).
  It keeps the paper's intent (rare V-A regions count more) with a mean weight of 1, so the loss stays on the MSE
  scale, learning-rate settings carry over, and no single sample can outweigh more than ~100 others.
- ``off``: plain MSE.
"""

from __future__ import annotations

import math

import numpy as np
import torch

DENSITY_MODES = ("published", "paper", "normalised", "off")
DEFAULT_CLIP = (0.1, 10.0)
_BLOCK_ELEMENTS = 1 << 22  # query x data pairs per block: 4M float64 = 32 MB per temporary


def silverman_bandwidth(n_samples: int, n_dims: int = 2) -> float:
    """sklearn's isotropic "silverman" rule: (n (d + 2) / 4) ** (-1 / (d + 4))."""
    if n_samples < 1:
        raise ValueError("the KDE needs at least one point")
    return (n_samples * (n_dims + 2) / 4.0) ** (-1.0 / (n_dims + 4))


def va_points(arousal, valence) -> np.ndarray:
    """(n, 2) float64 array with column 0 arousal, column 1 valence (the published column order)."""
    a = np.asarray(arousal, dtype=np.float64).reshape(-1)
    v = np.asarray(valence, dtype=np.float64).reshape(-1)
    if a.shape != v.shape:
        raise ValueError(f"arousal and valence differ in length: {a.shape[0]} vs {v.shape[0]}")
    return np.stack([a, v], axis=1)


def gaussian_kde(points, queries=None, bandwidth: float | str = "silverman",
                 block_elements: int = _BLOCK_ELEMENTS) -> tuple[np.ndarray, float]:
    """Densities of the Gaussian KDE fitted on ``points`` (n, d), at ``queries`` (default: the points themselves).

    Returns (density float64 (m,), bandwidth). Every point counts itself, as sklearn's ``score_samples`` does.
    """
    data = np.asarray(points, dtype=np.float64)
    if data.ndim != 2 or data.shape[0] == 0:
        raise ValueError(f"points must be a non-empty (n, d) array, got shape {data.shape}")
    query = data if queries is None else np.asarray(queries, dtype=np.float64)
    n, dims = data.shape
    h = silverman_bandwidth(n, dims) if bandwidth == "silverman" else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth!r}")
    norm = 1.0 / (n * (2.0 * math.pi * h * h) ** (dims / 2.0))
    inv_two_h2 = 1.0 / (2.0 * h * h)
    data_t, query_t = torch.from_numpy(data), torch.from_numpy(query)
    out = torch.empty(query_t.shape[0], dtype=torch.float64)
    step = max(1, block_elements // n)
    for start in range(0, query_t.shape[0], step):
        block = query_t[start:start + step]
        sq = torch.zeros(block.shape[0], n, dtype=torch.float64)
        for dim in range(dims):  # per coordinate: exact differences, no |x|²+|y|²-2xy cancellation
            sq.add_((block[:, dim:dim + 1] - data_t[None, :, dim]).square_())
        out[start:start + step] = sq.mul_(-inv_two_h2).exp_().sum(dim=1)
    out = out.numpy() * norm
    return out, h


def va_density(arousal, valence) -> np.ndarray:
    """The published d(a, v) of every pair: KDE fitted on and evaluated at all (arousal, valence) points."""
    return gaussian_kde(va_points(arousal, valence))[0]


def row_factors(density, mode: str, clip: tuple[float, float] = DEFAULT_CLIP) -> torch.Tensor | None:
    """Per-row float32 factor the loss needs for ``mode``: ``published`` -> d itself (the loss divides by it, as
    the official code does, rounded to f32 like its ``torch.FloatTensor([density])``); ``paper`` -> 1/d;
    ``normalised`` -> 1/d scaled to mean 1 over all rows, then clipped; ``off`` -> None."""
    if mode not in DENSITY_MODES:
        raise ValueError(f"density mode must be one of {DENSITY_MODES}, got {mode!r}")
    if mode == "off":
        return None
    d = np.asarray(density, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(d)) or np.any(d <= 0):
        raise ValueError("densities must be finite and positive")
    if mode == "published":
        return torch.from_numpy(d.astype(np.float32))
    weight = 1.0 / d
    if mode == "normalised":
        low, high = clip
        if not 0 < low <= 1 <= high:
            raise ValueError(f"clip must satisfy 0 < low <= 1 <= high, got {clip}")
        weight = np.clip(weight / weight.mean(), low, high)
    return torch.from_numpy(weight.astype(np.float32))

def emotion_target(neutral: torch.Tensor, emotional: torch.Tensor, alpha: float) -> torch.Tensor:
    """The published operation order: ``(e - n) * alpha + n``."""
    return (emotional - neutral) * alpha + neutral


def weighted_loss(pred: torch.Tensor, target: torch.Tensor, factor: torch.Tensor | None, mode: str,
                  count: int | None = None) -> torch.Tensor:
    """Training objective: weighted squared error summed over ``pred`` and divided by ``count`` (default: its
    number of elements, i.e. the mean). ``factor`` is the per-row tensor from ``kde.row_factors`` (B,).

    ``published`` reproduces the official op order: ``pred / d`` against ``(1/d) * target`` (f32 reciprocal), an
    effective weight of 1/d². ``paper`` / ``normalised`` weight each row's squared error by ``factor``.
    """
    if mode not in DENSITY_MODES:
        raise ValueError(f"density mode must be one of {DENSITY_MODES}, got {mode!r}")
    count = pred.numel() if count is None else count
    if mode == "off" or factor is None:
        if mode != "off":
            raise ValueError(f"density mode {mode!r} needs per-row factors")
        return (pred - target).square().sum() / count
    shape = (-1,) + (1,) * (pred.dim() - 1)
    factor = factor.to(device=pred.device, dtype=pred.dtype).view(shape)
    if mode == "published":
        return (pred / factor - (1.0 / factor) * target).square().sum() / count
    return (factor * (pred - target).square()).sum() / count


def squared_error_sum(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Unweighted sum of squared errors (for the MSE the best checkpoint is chosen by), without autograd."""
    with torch.no_grad():
        return (pred.float() - target.float()).square().sum()
