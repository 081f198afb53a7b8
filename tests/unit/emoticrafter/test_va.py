import math

import pytest
import torch

from emo_core.emoticrafter.va import VAPoints, check_va


def test_pairs_and_broadcasts_a_single_value():
    points = VAPoints.from_lists([-3, 0, 3], [1.5])
    assert points.valence == (-3.0, 0.0, 3.0) and points.arousal == (1.5, 1.5, 1.5)
    v, a = points.tensors()
    assert v.shape == (3,) and torch.equal(a, torch.full((3,), 1.5))


@pytest.mark.parametrize("value", [3.05, -4.0])
def test_out_of_range_needs_extrapolate(value):
    with pytest.raises(ValueError, match=r"outside the trained range \[-3, 3\].*extrapolate"):
        VAPoints.from_lists([value], [0])
    assert VAPoints.from_lists([value], [0], extrapolate=True).valence == (value,)


def test_rejects_nan_and_mismatched_lengths():
    with pytest.raises(ValueError, match="finite"):
        check_va("arousal", math.nan, extrapolate=True)
    with pytest.raises(ValueError, match="valence has 2 values but arousal has 3"):
        VAPoints.from_lists([0, 1], [0, 1, 2])


def test_grid_is_row_major_with_arousal_rows():
    grid = VAPoints.make_grid((-3, 3), (3, -3), columns=5, rows=3)
    assert grid.grid == (3, 5) and len(grid) == 15
    assert grid.valence[:5] == (-3.0, -1.5, 0.0, 1.5, 3.0)
    assert grid.arousal[:5] == (3.0,) * 5 and grid.arousal[-1] == -3.0


def test_path_includes_both_ends():
    path = VAPoints.make_path((-2, -1), (2, 1), steps=5)
    assert path.valence == (-2.0, -1.0, 0.0, 1.0, 2.0) and path.arousal == (-1.0, -0.5, 0.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="outside the trained range"):
        VAPoints.make_path((0, 0), (4, 0), steps=3)
