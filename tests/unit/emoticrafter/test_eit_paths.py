"""The default cross-attention rule (emo_core.emoticrafter.eit_paths): deterministic, and the expected pick for the
benchmark shapes. No timing here: the speed itself is measured by ``python -m bench eit``."""

import pytest
import torch

from emo_core.emoticrafter.eit import EITConfig, EmotionInjectionTransformer
from emo_core.emoticrafter.eit_paths import COSTS, cross_costs, use_folded

FULL = EITConfig()
SHAPE = {"length": 77, "width": FULL.n_embd, "heads": FULL.n_head, "tokens": FULL.n_tokens}


def pick(device: str, rows: int, contexts: int, grad: bool = False) -> bool:
    return use_folded(device, rows, contexts, grad=grad, **SHAPE)


# (rows B, distinct contexts U per stream, grad, folded?) for the shapes of bench/bench_eit.py on the CPU
BENCH_SHAPES_CPU = [
    (1, 1, False, True),  # B=1
    (25, 5, False, True),  # 5x5 grid over one prompt, and 25 different prompts on that grid
    (25, 1, False, True),  # 25 rows sharing one value on a stream
    (32, 32, True, False),  # training step: autograd, one value per row (no de-duplication in train mode)
]


@pytest.mark.parametrize("rows, contexts, grad, folded", BENCH_SHAPES_CPU)
def test_cpu_picks_the_expected_path_for_the_bench_shapes(rows, contexts, grad, folded):
    assert pick("cpu", rows, contexts, grad) is folded


def test_cpu_25_distinct_points_is_a_tie_either_way():
    """U = B = 25: the fold's per-context work cancels its per-row saving (measured: within 4 %)."""
    sdpa, folded = cross_costs("cpu", 25, 25, **SHAPE)
    assert abs(folded / sdpa - 1) < 0.05


def test_the_rule_is_deterministic_and_a_pure_function_of_device_and_shape():
    shapes = [(b, u, g) for b in (1, 2, 8, 25, 32, 100) for u in {1, b, max(1, b // 5)} for g in (False, True)]
    for device in ("cpu", "cuda", "mps"):
        first = [pick(device, b, u, g) for b, u, g in shapes]
        assert all(first == [pick(device, b, u, g) for b, u, g in shapes] for _ in range(3))
    assert [pick("mps", b, u, g) for b, u, g in shapes] == [pick("cuda", b, u, g) for b, u, g in shapes]


def test_autograd_always_takes_sdpa():
    for device in ("cpu", "cuda"):
        for rows, contexts in ((1, 1), (25, 5), (32, 32), (768, 25)):
            assert pick(device, rows, contexts, grad=True) is False


def test_more_distinct_contexts_never_favour_folding():
    """Monotone in U: folding pays per distinct context, so past the crossover it stays off."""
    for device in ("cpu", "cuda"):
        for rows in (1, 5, 25, 100):
            picks = [pick(device, rows, u) for u in range(1, rows + 1)]
            assert picks == sorted(picks, reverse=True)


def test_cuda_table_is_marked_unmeasured_and_b1_takes_sdpa_there():
    assert COSTS["cpu"].measured and not COSTS["cuda"].measured
    assert pick("cuda", 1, 1) is False and pick("cuda", 25, 5) is True


def test_the_model_applies_the_rule_per_stream():
    """A one-layer full-width EIT: the model's choice equals the rule's for a grid, one value per row, training."""
    torch.manual_seed(0)
    model = EmotionInjectionTransformer(EITConfig(n_layer=1)).eval()
    embeds = torch.zeros(1, 77, FULL.feature_dim)
    grid = torch.tensor([-3.0, -1.5, 0.0, 1.5, 3.0])
    with torch.no_grad():
        ctx = model._va_context(grid.repeat_interleave(5)[:, None], grid.repeat(5)[:, None], dedupe=True)
        assert model._fold(embeds, ctx, 25) == (True, True)
        ctx = model._va_context(torch.zeros(25, 1), torch.linspace(-3, 3, 25)[:, None], dedupe=True)
        assert model._fold(embeds, ctx, 25) == (True, pick("cpu", 25, 25))
    model.train()
    ctx = model._va_context(torch.zeros(32, 1), torch.zeros(32, 1), dedupe=False)
    assert model._fold(embeds, ctx, 32) == (False, False)  # parameters need gradients
    model.fold_cross = True
    assert model._fold(embeds, ctx, 32) == (True, True)  # an explicit choice wins
