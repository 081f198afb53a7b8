"""Emotion injection around the EIT: strength blending, long-prompt chunking and the conditioning checks."""

import pytest
import torch

from emo_core.emoticrafter.inject import CHUNK, SDXL_WIDTH, check_sdxl_conditioning, inject


class Recorder(torch.nn.Module):
    """A stand-in EIT: adds valence + 10·arousal to every feature and records the windows it saw."""

    def __init__(self):
        super().__init__()
        self.windows = []

    def forward(self, x, valence, arousal):
        self.windows.append(x.shape[1])
        shift = (valence + 10 * arousal).view(-1, 1, 1)
        return x + shift


def embeds(tokens: int, batch: int = 1) -> torch.Tensor:
    return torch.randn(batch, tokens, SDXL_WIDTH, generator=torch.Generator().manual_seed(tokens))


def test_strength_blends_between_neutral_and_emotional():
    f, v, a = embeds(CHUNK), torch.tensor([1.0]), torch.tensor([0.5])
    full = inject(Recorder(), f, v, a, strength=1.0)
    assert torch.allclose(full, f + 6.0)
    assert torch.equal(inject(Recorder(), f, v, a, strength=0.0), f)
    assert torch.allclose(inject(Recorder(), f, v, a, strength=0.5), f + 3.0)
    assert torch.allclose(inject(Recorder(), f, v, a, strength=2.0), f + 12.0)


def test_per_chunk_keeps_every_window_and_truncate_keeps_the_first():
    f, v, a = embeds(3 * CHUNK), torch.tensor([1.0]), torch.tensor([0.0])
    network = Recorder()
    out = inject(network, f, v, a, long_prompt="per_chunk")
    assert out.shape == (1, 3 * CHUNK, SDXL_WIDTH) and network.windows == [CHUNK] * 3
    short = inject(Recorder(), f, v, a, long_prompt="truncate")
    assert short.shape == (1, CHUNK, SDXL_WIDTH) and torch.allclose(short, f[:, :CHUNK] + 1.0)
    assert torch.equal(inject(Recorder(), f[:, :CHUNK], v, a, long_prompt="per_chunk"),
                       inject(Recorder(), f[:, :CHUNK], v, a, long_prompt="truncate"))


def test_one_prompt_fans_out_to_every_point():
    f = embeds(CHUNK)
    out = inject(Recorder(), f, torch.tensor([0.0, 1.0, 2.0]), torch.tensor([0.0, 0.0, 1.0]))
    assert out.shape == (3, CHUNK, SDXL_WIDTH)
    assert torch.allclose(out[2], f[0] + 12.0)


def test_cancel_is_checked_before_each_window():
    calls = []

    def cancel():
        calls.append(1)
        if len(calls) == 2:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        inject(Recorder(), embeds(3 * CHUNK), torch.tensor([0.0]), torch.tensor([0.0]), check_cancel=cancel)
    assert len(calls) == 2


def test_unknown_long_prompt_mode_is_refused():
    with pytest.raises(ValueError, match="per_chunk, truncate"):
        inject(Recorder(), embeds(CHUNK), torch.tensor([0.0]), torch.tensor([0.0]), long_prompt="split")


@pytest.mark.parametrize(("shape", "count", "message"), [
    ((1, CHUNK, 768), 1, "SDXL text conditioning"),
    ((1, CHUNK + 5, SDXL_WIDTH), 1, "77-token"),
    ((2, CHUNK, SDXL_WIDTH), 3, "2 prompts but the V-A input has 3 points"),
])
def test_conditioning_checks(shape, count, message):
    with pytest.raises(ValueError, match=message):
        check_sdxl_conditioning(torch.zeros(shape), count)
    check_sdxl_conditioning(torch.zeros(1, CHUNK, SDXL_WIDTH), count)
