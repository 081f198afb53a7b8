"""Valence-arousal points: the emotion coordinates EmotiCrafter was trained on, both on [-3, 3]."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

VA_MIN, VA_MAX = -3.0, 3.0
EXTRAPOLATE_LIMIT = 10.0  # even when extrapolating: far beyond the trained range the EIT's output overflows
MAX_POINTS = 256  # one image per point; a 16x16 grid. More in one batch is a mistake, not a render


def va_problem(name: str, value, extrapolate: bool = False) -> str | None:
    """Why ``value`` cannot be a valence/arousal coordinate (message starts with ``name``), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return f"{name}: {value!r} is not a number"
    if not math.isfinite(value):
        return f"{name}: {value} must be a finite number"
    if not extrapolate and not VA_MIN <= value <= VA_MAX:
        return (f"{name}: {value:g} is outside the trained range [{VA_MIN:g}, {VA_MAX:g}]; turn on 'extrapolate' "
                "to use it anyway (results beyond the range are untrained)")
    if abs(value) > EXTRAPOLATE_LIMIT:
        return (f"{name}: {value:g} is beyond ±{EXTRAPOLATE_LIMIT:g}, even with 'extrapolate' (the trained range "
                f"is [{VA_MIN:g}, {VA_MAX:g}])")
    return None


def check_va(name: str, value: float, extrapolate: bool = False) -> None:
    """Reject non-numbers and non-finite values, values the EIT never saw unless the caller opts in to
    extrapolation, and values far beyond any sensible extrapolation."""
    problem = va_problem(name, value, extrapolate)
    if problem:
        raise ValueError(problem)


def check_count(count: int, what: str = "V-A points") -> None:
    if count > MAX_POINTS:
        raise ValueError(f"{count} {what} is more than {MAX_POINTS} (a 16x16 grid) in one batch: every point is "
                         "one image of the batch; split it into several runs")


def linspace(first: float, last: float, count: int) -> list[float]:
    if count < 1:
        raise ValueError(f"need at least one step, got {count}")
    check_count(count)
    if count == 1:
        return [float(first)]
    return [round(first + (last - first) * i / (count - 1), 6) for i in range(count)]


@dataclass(frozen=True)
class VAPoints:
    """A batch of (valence, arousal) points; one output image per point."""

    valence: tuple[float, ...]
    arousal: tuple[float, ...]
    grid: tuple[int, int] | None = None  # (rows, columns) when the points form a grid, row-major

    def __post_init__(self):
        if len(self.valence) != len(self.arousal) or not self.valence:
            raise ValueError(f"need as many valence as arousal values (at least one), got "
                             f"{len(self.valence)} and {len(self.arousal)}")
        check_count(len(self.valence))
        if self.grid is not None and self.grid[0] * self.grid[1] != len(self.valence):
            raise ValueError(f"a {self.grid[0]}x{self.grid[1]} grid needs {self.grid[0] * self.grid[1]} points")

    @classmethod
    def make_grid(cls, valence_range: tuple[float, float], arousal_range: tuple[float, float], columns: int,
                  rows: int, extrapolate: bool = False) -> VAPoints:
        """Columns step valence from its first to its last value; rows step arousal likewise (as the published
        5x5 figures: rows = arousal, columns = valence)."""
        valence = linspace(*valence_range, columns)
        arousal = linspace(*arousal_range, rows)
        points = cls.from_lists([v for _ in arousal for v in valence], [a for a in arousal for _ in valence],
                                extrapolate)
        return cls(points.valence, points.arousal, (rows, columns))

    @classmethod
    def make_path(cls, start: tuple[float, float], end: tuple[float, float], steps: int,
                  extrapolate: bool = False) -> VAPoints:
        """``steps`` evenly spaced points on the straight line from (v, a) ``start`` to ``end``, both included."""
        points = cls.from_lists(linspace(start[0], end[0], steps), linspace(start[1], end[1], steps), extrapolate)
        return cls(points.valence, points.arousal, (1, steps))

    @classmethod
    def from_lists(cls, valence: Sequence[float], arousal: Sequence[float],
                   extrapolate: bool = False) -> VAPoints:
        """Pair two lists; a single value is repeated to the other list's length."""
        for name, values in (("valence", valence), ("arousal", arousal)):
            for value in values:
                check_va(name, value, extrapolate)  # before float(): a clear message for non-numbers
        valence, arousal = [float(v) for v in valence], [float(a) for a in arousal]
        check_count(max(len(valence), len(arousal)))
        n = max(len(valence), len(arousal))
        if len(valence) == 1:
            valence *= n
        if len(arousal) == 1:
            arousal *= n
        if len(valence) != len(arousal):
            raise ValueError(f"valence has {len(valence)} values but arousal has {len(arousal)}; "
                             "give equal lengths or a single value for one of them")
        for v, a in zip(valence, arousal, strict=True):
            check_va("valence", v, extrapolate)
            check_va("arousal", a, extrapolate)
        return cls(tuple(valence), tuple(arousal))

    def __len__(self) -> int:
        return len(self.valence)

    def tensors(self, device=None, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """(valence, arousal), each of shape (N,)."""
        return (torch.tensor(self.valence, device=device, dtype=dtype),
                torch.tensor(self.arousal, device=device, dtype=dtype))
