"""emo_core.editor_loss against an independent float64 computation of the released train.py formula."""

import numpy as np
import pytest
import torch

from emo_core import editor_loss


def _reference(noise_pred, noise, text, tokens, weight):
    """MSE(ε̂, ε) + λ·mean_b(1 − cos(flatten(E_text_b), flatten(e_b))), float64 numpy, written out by hand."""
    pred, eps = noise_pred.double().numpy(), noise.double().numpy()
    mse = ((pred - eps) ** 2).mean()
    a = text.double().numpy().reshape(len(text), -1)
    b = tokens.double().numpy().reshape(len(tokens), -1)
    cos = (a * b).sum(1) / (np.sqrt((a * a).sum(1)) * np.sqrt((b * b).sum(1)))
    alignment = (1.0 - cos).mean()
    return mse + weight * alignment, mse, alignment


def _batch(dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    noise_pred = torch.randn(3, 4, 8, 8, generator=g)
    noise = torch.randn(3, 4, 8, 8, generator=g)
    text = torch.randn(3, 77, 768, generator=g)
    text[:, 20:] = 0.25 * text[:, 19:20]  # padding positions: repeats of the end token's state, as CLIP's are
    tokens = 0.3 * text + torch.randn(3, 77, 768, generator=g)
    return [x.to(dtype) for x in (noise_pred, noise, text, tokens)]


@pytest.mark.parametrize("weight", [0.5, 0.0, 2.0])
def test_editor_loss_equals_the_formula(weight):
    batch = _batch()
    total, mse, alignment = editor_loss(*batch, weight=weight)
    ref = _reference(*batch, weight)
    for got, want in zip((total, mse, alignment), ref, strict=True):
        assert got.dtype == torch.float32
        assert abs(got.item() - want) <= 1e-6 * abs(want) + 1e-12, (got.item(), want)


def test_padding_positions_count():
    noise_pred, noise, text, tokens = _batch()
    changed = tokens.clone()
    changed[:, 60:] += 1.0  # only padding positions differ
    assert editor_loss(noise_pred, noise, text, changed)[2] != editor_loss(noise_pred, noise, text, tokens)[2]
    ref = _reference(noise_pred, noise, text, changed, 0.5)[2]
    assert abs(editor_loss(noise_pred, noise, text, changed)[2].item() - ref) <= 1e-6 * ref


def test_fp16_inputs_are_computed_in_fp32():
    half = _batch(torch.float16, seed=1)
    total, mse, alignment = editor_loss(*half)
    assert total.dtype == mse.dtype == alignment.dtype == torch.float32
    ref = _reference(*[x.float() for x in half], 0.5)  # the fp16 values, computed exactly
    assert abs(total.item() - ref[0]) <= 1e-6 * ref[0]


def test_gradient_reaches_both_branches():
    noise_pred, noise, text, tokens = _batch()
    noise_pred.requires_grad_(True)
    tokens.requires_grad_(True)
    editor_loss(noise_pred, noise, text, tokens)[0].backward()
    assert noise_pred.grad.abs().sum() > 0 and tokens.grad.abs().sum() > 0
    assert text.grad is None


def test_shape_mismatch_is_named():
    noise_pred, noise, text, tokens = _batch()
    with pytest.raises(ValueError, match="text embeddings"):
        editor_loss(noise_pred, noise, text, tokens[:, :, :512])
