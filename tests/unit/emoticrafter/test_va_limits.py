"""V-A values: messages start with the input's name; non-numbers, NaN and absurd extrapolation are refused; a batch
has a sensible size."""

import math

import pytest

from emo_core.emoticrafter.va import MAX_POINTS, VAPoints, check_va, linspace, va_problem


def test_messages_start_with_the_input_name():
    assert va_problem("valence_to", 3.5).startswith("valence_to: 3.5 is outside the trained range")
    assert va_problem("arousal", math.nan, extrapolate=True) == "arousal: nan must be a finite number"
    assert va_problem("valence", "high") == "valence: 'high' is not a number"
    assert va_problem("valence", 2.0) is None and va_problem("valence", 7.0, extrapolate=True) is None


def test_extrapolation_has_a_limit():
    with pytest.raises(ValueError, match="valence: 1e\\+308 is beyond ±10, even with 'extrapolate'"):
        check_va("valence", 1e308, extrapolate=True)
    with pytest.raises(ValueError, match="valence: 1e\\+308 is outside the trained range"):
        VAPoints.from_lists([1e308], [0.0])


def test_non_numbers_are_refused_by_name():
    with pytest.raises(ValueError, match="arousal: \\(None,\\) is not a number"):
        VAPoints.from_lists([0.0], [(None,)])


def test_batches_are_bounded():
    assert len(VAPoints.make_grid((-3, 3), (3, -3), 16, 16)) == MAX_POINTS
    with pytest.raises(ValueError, match="257 V-A points is more than 256"):
        VAPoints.from_lists([0.0] * 257, [0.0])
    with pytest.raises(ValueError, match="more than 256"):
        linspace(0, 1, 1000)
