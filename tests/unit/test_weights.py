"""The one weight-file reader refuses NaN/inf weights, naming the file and the tensor."""

import pytest
import torch
from safetensors.torch import save_file

from emo_core.errors import CheckpointError
from emo_core.weights import first_non_finite, read_weights


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, suffix, bad):
    state = {"a.weight": torch.ones(3), "b.weight": torch.tensor([1.0, bad]), "steps": torch.tensor([7])}
    path = tmp_path / f"bad{suffix}"
    torch.save(state, path) if suffix == ".pt" else save_file(state, str(path))
    with pytest.raises(CheckpointError, match=rf"bad{suffix}: weight 'b.weight' contains NaN or infinity"):
        read_weights(path)


def test_finite_weights_and_integer_tensors_pass(tmp_path):
    state = {"a.weight": torch.ones(3), "steps": torch.tensor([7])}
    torch.save(state, tmp_path / "good.pt")
    tensors, _ = read_weights(tmp_path / "good.pt")
    assert first_non_finite(tensors) is None and torch.equal(tensors["a.weight"], state["a.weight"])
