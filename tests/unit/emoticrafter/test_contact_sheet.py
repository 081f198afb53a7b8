import pytest
import torch

from emo_core.emoticrafter.va import VAPoints
from emo_core.plots.sheet import contact_sheet


def test_grid_sheet_places_every_cell():
    points = VAPoints.make_grid((-3, 3), (3, -3), columns=3, rows=2)
    colours = [torch.tensor([(i + 1) / 7, 0.5, 0.0]) for i in range(6)]  # not grey: unlike the labels
    images = torch.stack([c.expand(32, 40, 3) for c in colours])
    sheet = contact_sheet(images, points)
    assert sheet.shape[0] == 1 and sheet.shape[-1] == 3
    # every cell's flat colour appears in the sheet exactly once as a 32x40 block
    for colour in colours:
        matches = (sheet[0] - colour).abs().amax(-1) < 1 / 255
        assert matches.sum() == 32 * 40


def test_mismatched_batch_is_refused():
    with pytest.raises(ValueError, match="3 images but 2 valence-arousal points"):
        contact_sheet(torch.zeros(3, 8, 8, 3), VAPoints.from_lists([0, 1], [0]))
