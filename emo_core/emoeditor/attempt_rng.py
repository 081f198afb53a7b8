"""The random draws of IEI attempts (T, then the noise), as a function of the attempt index.

Two streams:

* ``seed_once`` (published, [EE test.py]): one generator seeded once, drawn in order, attempt after attempt. Attempt k's
  draws are the k-th pair of the stream; to let a batch of attempts be drawn ahead and partly thrown away, the
  generator's state before every attempt is kept and restored when an attempt is drawn again.
* ``per_attempt`` (extension): attempt k draws from its own generator seeded with a hash of (seed, k), so its T
  and noise do not depend on what was drawn before.

Either way an attempt gets the same draws whether attempts run one by one or in batches.
"""

from __future__ import annotations

import hashlib

import torch

from .schedule import EditSettings, draw_T

SEED_ONCE, PER_ATTEMPT = "seed_once", "per_attempt"
RNG_MODES = (SEED_ONCE, PER_ATTEMPT)


def attempt_seed(seed: int, attempt: int) -> int:
    """A 64-bit seed for attempt ``attempt`` of a run seeded with ``seed``: BLAKE2b of both, so that neighbouring
    seeds or attempts give unrelated streams (seed + attempt would make (1, 1) and (2, 0) equal)."""
    digest = hashlib.blake2b(f"emo-nodes IEI attempt {int(seed)} {int(attempt)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class AttemptDraws:
    """``draw(attempt, noise_shape) -> (T, noise)`` for attempts asked in any order the IEI loop can produce:
    ascending, or back to an attempt drawn before (a batch cut short by an acceptance)."""

    def __init__(self, seed: int, mode: str, settings: EditSettings):
        if mode not in RNG_MODES:
            raise ValueError(f"rng: '{mode}' is not one of {', '.join(RNG_MODES)}")
        self.seed, self.mode, self.settings = int(seed), mode, settings
        self.generator = torch.Generator().manual_seed(self.seed)
        self.states = [self.generator.get_state()]  # seed_once: the state before attempt k, k = 0, 1, ...

    def draw(self, attempt: int, noise_shape: tuple[int, ...]) -> tuple[int, torch.Tensor]:
        if self.mode == PER_ATTEMPT:
            generator = torch.Generator().manual_seed(attempt_seed(self.seed, attempt))
        else:
            if not 0 <= attempt < len(self.states):
                raise ValueError(f"seed_once draws attempts in order: attempt {attempt} asked after "
                                 f"{len(self.states) - 1}")
            generator = self.generator
            generator.set_state(self.states[attempt])
        T = draw_T(generator, self.settings)
        noise = torch.randn(noise_shape, generator=generator, dtype=torch.float32)
        if self.mode == SEED_ONCE:
            del self.states[attempt + 1:]
            self.states.append(generator.get_state())
        return T, noise
