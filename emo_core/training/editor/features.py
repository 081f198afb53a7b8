"""What the EmoEditor trainer needs of each pair, computed once with the frozen VAE and text encoder, and the
per-row random draws of a training step.

Per pair: the source latent (VAE posterior **mode**, unscaled: the ip2p concat convention), the target's posterior
mean and standard deviation (a fresh posterior **sample** is drawn from them every step, as published), the text
encoder's last hidden state of the edit instruction (E_text of the alignment loss; identical instructions are
encoded once) and the direction onehot(target) − source_softmax. Images enter the VAE in [−1, 1] (the released
[EE train.py] fed [0, 1]: a published bug, fixed here).

Randomness: each (step, row) draws its timestep, noise, posterior sample and condition-dropout coin from its own
generator seeded by (seed, step, row). A batch therefore draws the same numbers however it is split over
data-parallel ranks, and a resumed run continues exactly, without saving generator states.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

TRAIN_TIMESTEPS = 1000  # t uniform over [0, 1000) ([EE train.py] drew from [0, T) after its first preview)

EncodeImage = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # [-1,1] (B,3,H,W) -> posterior mean, std
EncodeText = Callable[[list[str]], torch.Tensor]  # prompts -> (N, 77, width) last hidden state


@dataclass
class EditorBatch:
    source: torch.Tensor       # (B, 4, h, w) posterior mode, unscaled
    target_mean: torch.Tensor  # (B, 4, h, w) posterior mean, unscaled
    target_std: torch.Tensor   # (B, 4, h, w)
    text: torch.Tensor         # (B, 77, width) E_text of the instruction
    directions: torch.Tensor   # (B, 8)


class EditorFeatures:
    """Precomputed per-pair tensors (CPU, float32); ``fetch(rows)`` gives an ``EditorBatch``. ``val_rows``: the rows
    of a separate validation set (None: the loop's published split decides)."""

    def __init__(self, source, target_mean, target_std, text, text_index, directions,
                 val_rows: np.ndarray | None = None, pairs: Sequence | None = None, fingerprint: str = ""):
        n = len(source)
        for name, value in (("target_mean", target_mean), ("target_std", target_std), ("directions", directions),
                            ("text_index", text_index)):
            if len(value) != n:
                raise ValueError(f"editor features: {name} has {len(value)} rows, the source latents {n}")
        self.source, self.target_mean, self.target_std = source, target_mean, target_std
        self.text, self.text_index, self.directions = text, text_index, directions
        self.val_rows, self.pairs, self.fingerprint = val_rows, pairs, fingerprint
        self.skipped: list[str] = []  # "<set> pairs record N: <file>: why" of pairs left out (undecodable images)

    def __len__(self) -> int:
        return len(self.source)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.source.shape[1:])

    @property
    def token_shape(self) -> tuple[int, ...]:
        return tuple(self.text.shape[1:])

    def fetch(self, rows: torch.Tensor) -> EditorBatch:
        rows = torch.as_tensor(rows, dtype=torch.int64)
        return EditorBatch(self.source[rows], self.target_mean[rows], self.target_std[rows],
                           self.text[self.text_index[rows]], self.directions[rows])


def build_editor_features(pair_set, encode_image: EncodeImage, encode_text: EncodeText, *, val_set=None,
                          size: int = 224, batch_size: int = 8,
                          on_progress: Callable[[int, int], None] | None = None, on_error: str = "stop",
                          on_skip: Callable[[str], None] | None = None) -> EditorFeatures:
    """Encode every pair of ``pair_set`` (and ``val_set``, appended as the validation rows) once.

    ``encode_image``: images in [−1, 1], (B, 3, size, size) -> (posterior mean, posterior std), unscaled.
    ``encode_text``: instructions -> (N, 77, width). ``on_progress(done, total)`` after each image batch.
    Every pair needs its source_softmax (``editor_pairs.fill_source_softmax``).
    A pair whose image cannot be decoded (a truncated or corrupt file: the readers check only the headers):
    ``on_error="stop"`` raises ``EditorPairsError`` naming the pair (record number) and the file; ``"skip"`` leaves
    the pair out, calls ``on_skip("<set> record N: <file>: why")`` and lists it in the features' ``skipped``."""
    from .data import EditorPairsError, load_images

    if on_error not in ("stop", "skip"):
        raise ValueError(f"on_error must be 'stop' or 'skip', not {on_error!r}")
    train_pairs = list(pair_set.pairs)
    val_pairs = list(val_set.pairs) if val_set is not None else []
    if not train_pairs and not val_pairs:
        raise ValueError("editor features: the pair set is empty")
    tagged = [("train", p) for p in train_pairs] + [("validation", p) for p in val_pairs]
    all_directions = [pair.direction().float() for _, pair in tagged]  # a missing softmax fails before encoding
    kept, skipped, skipped_ids = [], [], []
    sources, means, stds = [], [], []
    with torch.no_grad():
        for start in range(0, len(tagged), batch_size):
            chunk = tagged[start:start + batch_size]
            try:
                images = load_images([p.source for _, p in chunk] + [p.target for _, p in chunk], size)
                good = list(range(len(chunk)))
            except EditorPairsError:  # find the undecodable pair(s) of this batch, one pair at a time
                good, images_of = [], []
                for i, (which, pair) in enumerate(chunk):
                    try:
                        images_of.append(load_images([pair.source, pair.target], size))
                        good.append(i)
                    except EditorPairsError as exc:
                        problem = f"{which} pairs record {pair.record}: {exc}"
                        if on_error == "stop":
                            raise EditorPairsError(f"{problem} (skipping bad records leaves such pairs out)") from None
                        skipped.append(problem)
                        skipped_ids.append(f"{which}:{pair.record}")
                        if on_skip is not None:
                            on_skip(problem)
                images = (torch.cat([torch.cat([i[:1] for i in images_of]), torch.cat([i[1:] for i in images_of])])
                          if good else None)
            if good:
                mean, std = encode_image(images * 2.0 - 1.0)
                mean, std = mean.float().cpu(), std.float().cpu()
                sources.append(mean[:len(good)])  # the posterior mode of a diagonal Gaussian is its mean
                means.append(mean[len(good):])
                stds.append(std[len(good):])
                kept.extend((*chunk[i], start + i) for i in good)
            if on_progress is not None:
                on_progress(min(start + batch_size, len(tagged)), len(tagged))
        n_train = sum(1 for which, _, _ in kept if which == "train")
        if n_train == 0:
            raise EditorPairsError(f"editor features: no training pair has decodable images ({len(skipped)} "
                                   f"skipped: {'; '.join(skipped[:5])})")
        if val_set is not None and n_train == len(kept):
            raise EditorPairsError(f"editor features: no validation pair has decodable images ({len(skipped)} "
                                   f"skipped: {'; '.join(skipped[:5])})")
        pairs = [pair for _, pair, _ in kept]
        directions = torch.stack([all_directions[at] for _, _, at in kept])
        prompts = sorted({pair.prompt for pair in pairs})
        index = {prompt: i for i, prompt in enumerate(prompts)}
        text = torch.cat([encode_text(prompts[i:i + 64]).float().cpu() for i in range(0, len(prompts), 64)])
    features = EditorFeatures(torch.cat(sources), torch.cat(means), torch.cat(stds), text,
                              torch.tensor([index[p.prompt] for p in pairs]), directions,
                              val_rows=np.arange(n_train, len(pairs)) if val_set is not None else None,
                              pairs=pairs, fingerprint=_fingerprint(pair_set, val_set, skipped_ids))
    features.skipped = skipped
    _check_finite(features)
    return features


def _fingerprint(pair_set, val_set, skipped=()) -> str:
    parts = [getattr(s, "fingerprint", lambda: "")() for s in (pair_set, val_set) if s is not None]
    if skipped and any(parts):  # the pairs left out are part of what the features hold
        parts.append("skipped:" + "|".join(skipped))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16] if any(parts) else ""


def _check_finite(features: EditorFeatures) -> None:
    for name in ("source", "target_mean", "target_std", "text", "directions"):
        if not torch.isfinite(getattr(features, name)).all():
            raise ValueError(f"editor features: the {name} tensors hold NaN or infinity (a broken VAE / text "
                             "encoder, or a direction without a valid source_softmax)")


def row_seed(seed: int, step: int, row: int) -> int:
    """A 63-bit seed for one (run seed, step, row); step −1 is the validation draw of a row."""
    digest = hashlib.blake2b(f"{seed}:{step}:{row}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@dataclass
class RowDraws:
    t: torch.Tensor         # (B,) int64 in [0, 1000)
    noise: torch.Tensor     # (B, 4, h, w) ε
    posterior: torch.Tensor  # (B, 4, h, w) standard normal of the target's posterior sample
    coin: torch.Tensor      # (B,) uniform [0, 1): condition dropout when below the dropout probability


def row_draws(seed: int, step: int, rows: Sequence[int], latent_shape: tuple[int, ...]) -> RowDraws:
    """The random numbers of ``rows`` at ``step`` (CPU, float32), each row from its own generator."""
    ts, noises, posteriors, coins = [], [], [], []
    for row in rows:
        generator = torch.Generator().manual_seed(row_seed(seed, step, int(row)))
        ts.append(torch.randint(0, TRAIN_TIMESTEPS, (1,), generator=generator))
        noises.append(torch.randn(latent_shape, generator=generator))
        posteriors.append(torch.randn(latent_shape, generator=generator))
        coins.append(torch.rand(1, generator=generator))
    return RowDraws(torch.cat(ts), torch.stack(noises), torch.stack(posteriors), torch.cat(coins))
