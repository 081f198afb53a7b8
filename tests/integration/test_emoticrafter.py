"""EmotiCrafter workflows on the real host: tiny SDXL + a tiny EIT in the published .pth format."""

import copy
import io

import numpy as np
import pytest
import torch
from conftest import load_workflow
from PIL import Image
from tiny_graph import for_tiny_models

T2I = "emoticrafter_text_to_image"


def tiny(name: str) -> dict:
    return for_tiny_models(load_workflow(name)[0])


def images(host, entry, node_id: str) -> list[np.ndarray]:
    return [np.asarray(Image.open(io.BytesIO(host.fetch(f)))) for f in host.output_files(entry, node_id)]


def render(host, api, prefix: str) -> np.ndarray:
    api = copy.deepcopy(api)
    save = next(k for k, v in api.items() if v["class_type"] == "SaveImage")
    api[save]["inputs"]["filename_prefix"] = f"emo-nodes/test/{prefix}"  # also defeats the output cache
    (image,) = images(host, host.run(api), save)
    return image.astype(np.int16)


def with_va(api: dict, valence: float, arousal: float, **extra) -> dict:
    api = copy.deepcopy(api)
    api["4"]["inputs"].update(valence=valence, arousal=arousal, **extra)
    return api


def test_grid_renders_every_cell_and_a_labelled_sheet(host):
    entry = host.run(tiny("emoticrafter_grid_5x5"))
    cells = images(host, entry, "12")
    (sheet,) = images(host, entry, "11")
    assert len(cells) == 25 and all(c.shape == (64, 64, 3) for c in cells)
    assert sheet.shape[0] > 5 * 64 and sheet.shape[1] > 5 * 64
    distinct = {c.tobytes() for c in cells}
    assert len(distinct) == 25, "every V-A cell should differ (same seed, different emotion)"


@pytest.mark.parametrize("cell, valence, arousal", [(0, -3.0, 3.0), (18, 1.5, -1.5)])
def test_grid_cell_equals_a_single_render_of_its_point(host, cell, valence, arousal):
    """One seed for every cell, as published: a cell is the image a batch of one gives at its V-A point."""
    grid = tiny("emoticrafter_grid_5x5")
    (cells,) = [images(host, host.run(grid), "12")]
    single = copy.deepcopy(grid)
    single["4"] = {"class_type": "EmoNodes_ValenceArousal",
                   "inputs": {"valence": valence, "arousal": arousal, "extrapolate": False}}
    single["7"]["inputs"]["batch_size"] = 1
    for node in ("10", "11"):
        del single[node]
    alone = render(host, single, f"grid_cell_{cell}")
    assert np.abs(cells[cell].astype(np.int16) - alone).max() <= 1


def test_va_changes_the_image_and_reproduces(host):
    api = tiny(T2I)
    calm = render(host, with_va(api, -2.0, -2.0), "calm")
    excited = render(host, with_va(api, 2.5, 2.5), "excited")
    calm_again = render(host, with_va(api, -2.0, -2.0), "calm_again")
    assert np.array_equal(calm, calm_again)
    assert np.abs(calm - excited).mean() > 1.0


def test_strength_zero_is_the_neutral_baseline(host):
    api = tiny(T2I)
    api["5"]["inputs"]["strength"] = 0.0
    baseline = render(host, tiny("sdxl_text_to_image"), "baseline")
    assert np.array_equal(render(host, api, "strength0"), baseline)


def test_long_prompt_modes(host):
    api = tiny(T2I)
    api["2"]["inputs"]["text"] = ", ".join(["a lighthouse on a rocky coast under a stormy sky"] * 12)
    per_chunk = render(host, api, "long_per_chunk")
    api["5"]["inputs"]["long_prompt"] = "truncate"
    truncated = render(host, api, "long_truncate")
    assert np.abs(per_chunk - truncated).mean() > 0.5


def test_out_of_range_va_is_rejected_unless_extrapolating(host):
    details = host.rejection(with_va(tiny(T2I), 3.5, 0.0), "4")
    assert "outside the trained range" in details and "extrapolate" in details
    render(host, with_va(tiny(T2I), 3.5, 0.0, extrapolate=True), "extrapolated")


@pytest.mark.parametrize("kind", ["corrupt", "not_an_eit"])
def test_wrong_checkpoint_names_the_file_and_host_keeps_serving(host, kind):
    folder = host.base / "models" / "emoticrafter"
    path = folder / f"{kind}.pth"
    if kind == "corrupt":
        path.write_bytes(b"this is not a checkpoint" * 10)
    else:
        torch.save({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(4, 4)}, path)
    try:
        api = tiny(T2I)
        api["3"]["inputs"]["eit_name"] = path.name
        message = host.run_error(api)
        assert message["node_id"] == "3" and path.name in message["exception_message"]
        render(host, tiny(T2I), f"after_{kind}")  # still serving, and the good file still loads
    finally:
        path.unlink()


def test_reduced_precision_eit_stays_close_to_fp32(host):
    api = tiny(T2I)
    reference = render(host, api, "fp32")
    api["3"]["inputs"]["dtype"] = "bf16"
    bf16 = render(host, api, "bf16")
    other_emotion = render(host, with_va(tiny(T2I), -2.5, -2.5), "other_emotion")
    assert np.abs(bf16 - reference).mean() < np.abs(other_emotion - reference).mean()


def test_unknown_eit_file_is_refused_at_queue_time(host):
    api = tiny(T2I)
    api["3"]["inputs"]["eit_name"] = "no_such_eit.pth"
    details = host.rejection(api, "3")
    assert "no_such_eit.pth" in details and "emoticrafter" in details
