"""The IEI trace plot (emo_core/plots/iei.py) and the target mark of the emotion bar chart (emo_core/plots/bars.py):
what each element of the picture shows, read back from the pixels."""

import numpy as np
import pytest
import torch

from emo_core.emoeditor.emotions import EMOTIONS
from emo_core.plots.bars import PAD, ROW, chart_batch, draw_chart
from emo_core.plots.iei import iei_plot_image, iei_plots
from emo_core.plots.loss import SERIES
from emo_core.plots.style import BAND, BEST, TARGET_MARK

SSIM_COLOUR = SERIES[0][2]


def run(entries, chosen=0, status="max_attempts") -> dict:
    trace = [{"attempt": i, "ssim": s, "p_target": p, "accepted": a} for i, (s, p, a) in enumerate(entries)]
    return {"trace": trace, "status": status, "chosen_attempt": chosen}


def mask(image: np.ndarray, colour) -> np.ndarray:
    return np.all(image == np.array(colour, dtype=np.uint8), axis=-1)


def test_plot_is_an_rgb_picture_and_batches_one_per_run():
    runs = [run([(0.6, 0.2, True), (0.9, 0.3, False)]), run([(0.3, 0.1, False)], chosen="source", status="exhausted")]
    image = iei_plot_image(runs[0], (0.5, 0.8), 0.6, "awe")
    assert image.dtype == np.uint8 and image.shape == (360, 720, 3)
    batch = iei_plots(runs, (0.5, 0.8), 0.6, "awe")
    assert batch.shape == (2, 360, 720, 3) and batch.dtype == torch.float32
    assert 0 <= float(batch.min()) and float(batch.max()) <= 1
    assert not torch.equal(batch[0], batch[1])


def band_rows(image: np.ndarray) -> np.ndarray:
    """Rows of the SSIM band at the plot's left edge (no series there with a single attempt in the middle)."""
    return np.nonzero(mask(image, BAND)[:, 60])[0]


@pytest.mark.parametrize("band", [(0.5, 0.8), (0.2, 0.4)])
def test_the_ssim_band_is_shaded_where_and_as_wide_as_it_is(band):
    image = iei_plot_image(run([(0.6, 0.3, True)]), band, 0.95, "awe")
    rows = band_rows(image)
    assert rows.size, "no band drawn"
    top, bottom = 48, 360 - 40  # the plot area; the axis runs 0 to 1 here
    per_unit = bottom - top
    expected = (band[1] - band[0]) * per_unit
    assert abs((rows.max() - rows.min() + 1) - expected) <= 3
    assert abs(rows.max() - (bottom - band[0] * per_unit)) <= 2 and abs(rows.min() - (bottom - band[1] * per_unit)) <= 2


def test_the_confidence_threshold_is_a_dashed_line_at_its_height():
    image = iei_plot_image(run([(0.6, 0.3, True)]), (0.5, 0.8), 0.25, "awe")
    y = round(360 - 40 - 0.25 * (360 - 40 - 48))
    row = mask(image, TARGET_MARK)[y, 56:704]
    assert 0.3 < row.mean() < 0.7, "a dashed line covers about half of the plot's width"
    other = iei_plot_image(run([(0.6, 0.3, True)]), (0.5, 0.8), 0.9, "awe")
    assert mask(other, TARGET_MARK)[y, 56:704].mean() < 0.1


def test_accepted_and_rejected_attempts_are_marked_differently():
    accepted = iei_plot_image(run([(0.6, 0.3, True)], chosen="source"), (0.5, 0.8), 0.9, "awe")
    rejected = iei_plot_image(run([(0.6, 0.3, False)], chosen="source"), (0.5, 0.8), 0.9, "awe")
    assert not np.array_equal(accepted, rejected)
    region = (slice(48, 320), slice(300, 460))  # around the single attempt in the middle
    dot, cross = mask(accepted, SSIM_COLOUR)[region].sum(), mask(rejected, SSIM_COLOUR)[region].sum()
    assert dot > cross > 0, (dot, cross)


def test_the_chosen_attempt_is_highlighted_and_the_source_is_not_an_attempt():
    entries = [(0.6, 0.2, True), (0.7, 0.4, True), (0.9, 0.5, False)]
    chosen = iei_plot_image(run(entries, chosen=1), (0.5, 0.8), 0.9, "awe")
    columns = np.nonzero(mask(chosen, BEST)[60:300].sum(axis=0) > 100)[0]  # the vertical line
    assert columns.size and abs(columns.mean() - (56 + 1.5 / 3 * (704 - 56))) <= 2
    source = iei_plot_image(run(entries, chosen="source"), (0.5, 0.8), 0.9, "awe")
    assert not (mask(source, BEST)[60:300].sum(axis=0) > 100).any()


def test_negative_ssim_extends_the_axis_and_an_empty_trace_still_draws():
    image = iei_plot_image(run([(-0.5, 0.3, False)]), (0.5, 0.8), 0.6, "fear")
    rows = band_rows(image)
    assert rows.size and (rows.max() - rows.min() + 1) < 0.3 * (360 - 88) - 5  # the 0.3-wide band got shorter
    empty = iei_plot_image(run([], chosen="source", status="cancelled"), (0.5, 0.8), 0.6, "fear")
    assert empty.shape == (360, 720, 3) and band_rows(empty).size


def target_rows(chart) -> np.ndarray:
    return np.nonzero(mask(np.asarray(chart), TARGET_MARK).any(axis=1))[0]


@pytest.mark.parametrize("target", EMOTIONS)
def test_the_chart_outlines_the_target_row(target):
    distribution = torch.softmax(torch.linspace(-1, 1, 8), 0)
    rows = target_rows(draw_chart(distribution, target=target))
    row_top = PAD + ROW * (EMOTIONS.index(target) + 1)
    assert rows.min() == row_top and rows.max() == row_top + ROW


def test_the_chart_without_a_target_is_unmarked_and_names_the_target_in_its_title():
    distribution = torch.softmax(torch.linspace(-1, 1, 8), 0)
    plain = np.asarray(draw_chart(distribution))
    assert not mask(plain, TARGET_MARK).any()
    assert np.array_equal(plain, np.asarray(draw_chart(distribution, target=None)))
    marked = np.asarray(draw_chart(distribution, target="awe"))
    assert not np.array_equal(marked[:PAD + ROW], plain[:PAD + ROW]), "the title names the target"
    batch = chart_batch(distribution.repeat(2, 1), target="fear")
    assert batch.shape[0] == 2 and torch.equal(batch[0], batch[1])
    assert mask((batch[0].numpy() * 255).round().astype(np.uint8), TARGET_MARK).any()
