"""V-A -> emotion distribution (emo_core/emoeditor/continuous.py): the kernel mapping, its sigma -> 0 limit, the
expected V-A, and the cited centres against the spec's table."""


import numpy as np
import pytest
import torch
from paths import SHARED

import emo_core
from emo_core.emoeditor.continuous import (
    EMOTION_VA_CENTRES,
    WARRINER_2013_RATINGS,
    direction_towards,
    expected_va,
    nearest_class,
    va_distance,
    va_to_emotions,
)
from emo_core.emoeditor.emotions import EMOTIONS, emotion_direction, one_hot

SPEC = SHARED / "spec" / "emoeditor.md"


def spec_table() -> dict[str, tuple[float, float, float, float]]:
    """The spec's section-11 table: class -> (V 1-9, A 1-9, V [-3,3], A [-3,3])."""
    text = SPEC.read_text().split("## 11.")[1]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in EMOTIONS:
            rows[cells[0]] = tuple(float(c.replace("\u2212", "-")) for c in cells[1:])
    return rows


def test_centres_are_the_cited_ratings_of_the_spec_table():
    assert SPEC.is_file(), f"the spec is read from {SPEC}"
    table = spec_table()
    assert sorted(table) == sorted(EMOTIONS)
    assert "Warriner" in SPEC.read_text().split("## 11.")[1] and "Warriner" in emo_core.emoeditor.continuous.CITATION
    for i, name in enumerate(EMOTIONS):
        v19, a19, v3, a3 = table[name]
        assert WARRINER_2013_RATINGS[name] == (v19, a19), name  # the 1-9 ratings exactly as cited
        # the [-3, 3] centres: the mapping (x - 5) * 0.75 of those ratings, which the spec prints to 2 decimals
        assert EMOTION_VA_CENTRES[i].tolist() == [(v19 - 5) * 0.75, (a19 - 5) * 0.75]
        assert abs(float(EMOTION_VA_CENTRES[i, 0]) - v3) <= 0.005 + 1e-9, name
        assert abs(float(EMOTION_VA_CENTRES[i, 1]) - a3) <= 0.005 + 1e-9, name
    assert EMOTION_VA_CENTRES.shape == (8, 2) and emo_core.EMOTION_VA_CENTRES is EMOTION_VA_CENTRES
    assert emo_core.va_to_emotions is va_to_emotions


def test_changing_the_exported_tensor_cannot_change_the_mapping():
    before = va_to_emotions(0.5, 0.5, 1.0)
    copy = EMOTION_VA_CENTRES.clone()
    EMOTION_VA_CENTRES.zero_()
    try:
        assert torch.equal(va_to_emotions(0.5, 0.5, 1.0), before)
    finally:
        EMOTION_VA_CENTRES.copy_(copy)


def brute_force(v: float, a: float, sigma: float) -> torch.Tensor:
    d2 = ((torch.tensor([v, a], dtype=torch.float64) - EMOTION_VA_CENTRES) ** 2).sum(-1)
    w = torch.exp(-d2 / (2 * sigma ** 2))
    return w / w.sum()


@pytest.mark.parametrize("sigma", [0.3, 0.7, 1.5, 4.0])
def test_is_the_gaussian_kernel_distribution_and_sums_to_one(sigma):
    generator = torch.Generator().manual_seed(1)
    for v, a in (torch.rand(40, 2, generator=generator) * 6 - 3).tolist():
        p = va_to_emotions(v, a, sigma)
        assert p.shape == (8,) and p.dtype == torch.float32
        assert abs(float(p.double().sum()) - 1) < 1e-6 and bool((p >= 0).all())
        assert torch.allclose(p.double(), brute_force(v, a, sigma), atol=1e-7)
        nearest = int(torch.argmin(((torch.tensor([v, a]) - EMOTION_VA_CENTRES.float()) ** 2).sum(-1)))
        assert int(torch.argmax(p)) == nearest == nearest_class(v, a)  # the maximum is at the nearest centre


def test_tiny_and_zero_sigma_give_the_one_hot_of_the_nearest_class():
    for v, a in [(1.9, 0.8), (-2.5, -2.9), (0.0, 0.0), (3.0, 3.0), (-1.0, 1.0)]:
        nearest = nearest_class(v, a)
        for sigma in (0.0, 1e-300, 1e-30, 1e-6):
            assert torch.equal(va_to_emotions(v, a, sigma), one_hot(nearest)), (v, a, sigma)


def test_published_direction_is_the_zero_sigma_case_at_the_target_centre():
    source = torch.softmax(torch.randn(8, generator=torch.Generator().manual_seed(3)), 0)
    for i, name in enumerate(EMOTIONS):
        v, a = EMOTION_VA_CENTRES[i].tolist()
        target = va_to_emotions(v, a, 0.0)
        assert torch.equal(direction_towards(target, source), emotion_direction(name, source))  # bit for bit


def test_ties_share_the_mass_equally():
    # the midpoint of two centres is equally far from both; with sigma 0 they split the mass
    mid = ((EMOTION_VA_CENTRES[1] + EMOTION_VA_CENTRES[6]) / 2).tolist()  # anger / fear
    p = va_to_emotions(*mid, 0.0)
    assert p[1] == p[6] == 0.5 and float(p.sum()) == 1
    assert nearest_class(*mid) == 1  # the lowest index, as argmax


def test_batches_and_expected_va():
    v, a = torch.tensor([[-1.0, 2.0], [0.5, 0.0]]), torch.tensor([[0.0, 1.0], [-2.0, 0.3]])
    p = va_to_emotions(v, a, 0.8)
    assert p.shape == (2, 2, 8)
    assert torch.equal(p[1, 0], va_to_emotions(0.5, -2.0, 0.8))
    for i in range(8):  # a one-hot's expected V-A is its centre
        assert torch.equal(expected_va(one_hot(i)), EMOTION_VA_CENTRES[i])
    uniform = torch.full((8,), 1 / 8)
    assert torch.allclose(expected_va(uniform), EMOTION_VA_CENTRES.mean(0))
    assert va_distance(one_hot("awe"), *EMOTION_VA_CENTRES[2].tolist()) == 0.0
    # a wide kernel pulls the expected V-A towards the centres' mean
    assert va_distance(va_to_emotions(2.5, 2.5, 1e4), *EMOTION_VA_CENTRES.mean(0).tolist()) < 1e-3


@pytest.mark.parametrize("bad", [dict(sigma=-0.1), dict(sigma=float("nan")), dict(valence=float("inf"))])
def test_bad_values_are_refused_by_name(bad):
    args = dict(valence=0.0, arousal=0.0, sigma=1.0) | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        va_to_emotions(**args)


def test_target_and_source_must_be_distributions():
    with pytest.raises(ValueError, match="target distribution"):
        direction_towards(torch.tensor([0.5] * 8), one_hot(0))
    with pytest.raises(ValueError, match="source distribution.*8 class"):
        direction_towards(one_hot(0), torch.ones(7) / 7)


def test_picture_shows_the_point_the_centres_and_the_chart():
    from emo_core.plots.plane import MARGIN, PLANE, va_emotions_image, va_emotions_images
    from emo_core.plots.style import NEGATIVE, POSITIVE, TARGET_MARK

    def colour(picture, rgb):
        return np.all(picture == np.array(rgb, dtype=np.uint8), axis=-1)

    p = va_to_emotions(-2.0, 2.0, 0.0)  # fear, one-hot
    picture = va_emotions_image(-2.0, 2.0, 0.0, p)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[1] > PLANE + 2 * MARGIN
    scale = PLANE / 6
    x, y = round(MARGIN + (-2.0 + 3) * scale), round(MARGIN + (3 - 2.0) * scale)
    assert colour(picture[y - 3:y + 4, x - 3:x + 4], TARGET_MARK).any()  # the cross at the point
    plane, chart = picture[:, :PLANE + 2 * MARGIN], picture[:, PLANE + 2 * MARGIN:]
    assert colour(chart, NEGATIVE).sum() > 20 * colour(chart, POSITIVE).sum()  # fear's full bar, nothing else
    fx, fy = (round(MARGIN + (float(c) + 3) * scale) for c in (EMOTION_VA_CENTRES[6, 0], -EMOTION_VA_CENTRES[6, 1]))
    big = colour(plane[fy - 10:fy + 11, fx - 10:fx + 11], NEGATIVE).sum()
    ax, ay = (round(MARGIN + (float(c) + 3) * scale) for c in (EMOTION_VA_CENTRES[7, 0], -EMOTION_VA_CENTRES[7, 1]))
    small = colour(plane[ay - 10:ay + 11, ax - 10:ax + 11], NEGATIVE).sum()
    assert big > 4 * small > 0  # dot area follows probability: fear 1, sadness 0 (still drawn)
    batch = va_emotions_images([0.0, 1.0], [0.0, -1.0], 0.5, va_to_emotions(torch.tensor([0.0, 1.0]),
                                                                          torch.tensor([0.0, -1.0]), 0.5))
    assert batch.shape[0] == 2 and batch.dtype == torch.float32 and 0 <= float(batch.min()) <= float(batch.max()) <= 1


def test_va_trace_picture_marks_each_attempt_and_the_choice():
    from emo_core.plots.plane import va_trace_image, va_trace_plots
    from emo_core.plots.style import BEST

    run = {"status": "va_reached", "chosen_attempt": 1,
           "trace": [{"attempt": 0, "expected_va": [-1.0, 0.5], "accepted": False},
                     {"attempt": 1, "expected_va": [1.2, -0.7], "accepted": True}]}
    target = va_to_emotions(1.39, -0.88, 0.5)
    picture = va_trace_image(run, 1.39, -0.88, 0.3, target)
    empty = va_trace_image({"trace": []}, 1.39, -0.88, 0.3, target)
    assert picture.shape == empty.shape and (picture != empty).any()
    assert np.all(picture == np.array(BEST, dtype=np.uint8), axis=-1).any()  # the chosen attempt's ring
    assert va_trace_plots([run, run], 1.39, -0.88, 0.3, target).shape[0] == 2
