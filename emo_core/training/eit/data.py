"""The published EmotiCrafter training pairs CSV (``prompt_mapping.csv``): parsing, validation and a content hash.

Columns, as published: ``Id, Arousal, Valence, Tag, Dataset, Neutral_Prompt, Emotional_Prompt``; arousal and
valence are raw values on [-3, 3]. Column order may vary and extra columns are ignored. Every malformed row is
reported with the line number where its record starts (header = line 1), so a user can fix the file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import MAX_LISTED, ON_ERROR, DatasetError  # the engine's; importable from here too
from ..naming import open_regular, regular_file

COLUMNS = ("Id", "Arousal", "Valence", "Tag", "Dataset", "Neutral_Prompt", "Emotional_Prompt")
VA_LIMIT = 3.0  # |arousal|, |valence| <= 3 on the published scale


@dataclass(frozen=True)
class RowProblem:
    line: int  # 1-based line where the record starts in the file (the header is line 1)
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


@dataclass(frozen=True)
class PairRow:
    line: int
    id: str
    arousal: float
    valence: float
    tag: str
    dataset: str
    neutral: str
    emotional: str


@dataclass
class PairsData:
    """The usable rows of a pairs CSV, in file order, plus what was skipped and the file's content hash."""

    rows: list[PairRow]
    skipped: list[RowProblem] = field(default_factory=list)
    content_hash: str = ""
    source: str = ""

    @property
    def n_skipped(self) -> int:
        return len(self.skipped)

    def __len__(self) -> int:
        return len(self.rows)


def content_hash(data: bytes) -> str:
    """sha256 hex of the raw bytes: a cache key that changes with any edit of the file."""
    return hashlib.sha256(data).hexdigest()


def file_content_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 hex of a regular file's bytes; anything else (a FIFO, a device, a folder) raises DatasetError after an
    ``os.stat``, without being opened (a FIFO would block until someone writes to it)."""
    digest = hashlib.sha256()
    with open_regular(regular_file(path, "pairs file", error=DatasetError), "pairs file", DatasetError) as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


MAX_FIELD_CHARS = 131_072  # a prompt longer than this is a broken row (Python's csv default limit)
MAX_RECORD_CHARS = 1 << 20  # a record (row) longer than this is not held in memory; reported and skipped
MAX_HEADER_CHARS = 1 << 16  # the first line of a pairs CSV is its short header; a longer one is not a pairs CSV
_PIECE_CHARS = 1 << 16  # read at most this much text at a time (a file without newlines never sits in memory)
_SNIFF_BYTES = 8192


def read_pairs(path: str | os.PathLike, on_error: str = "stop") -> PairsData:
    """Read and validate a pairs CSV file. ``on_error``: "stop" raises DatasetError on the first bad rows (listing
    up to MAX_LISTED with line numbers); "skip" drops exactly those rows and reports each in ``PairsData.skipped``.

    The file is streamed (read in pieces, hashed while read): memory holds the usable rows, never the file. Nothing
    of a file's content is quoted in an error until its first line has been recognised as the pairs header."""
    path = Path(path)
    handle = open_regular(regular_file(path, "pairs CSV", error=DatasetError), "pairs CSV", DatasetError)
    with handle:
        return _parse_stream(handle, on_error, str(path))


def parse_pairs(data: bytes | str, on_error: str = "stop", source: str = "pairs CSV") -> PairsData:
    """Parse CSV content (bytes are decoded as UTF-8, a BOM tolerated); see ``read_pairs``."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    return _parse_stream(io.BytesIO(raw), on_error, source)


class _HashingReader(io.RawIOBase):
    """Passes a binary file through, feeding every byte read to sha256."""

    def __init__(self, raw):
        self.raw, self.digest = raw, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        self.digest.update(data)
        buffer[:len(data)] = data
        return len(data)


# csv's reader states (strict, default dialect), as far as record boundaries need them
_START_RECORD, _START_FIELD, _IN_FIELD, _IN_QUOTED, _QUOTE_IN_QUOTED, _SKIP_LINE = range(6)
_UNQUOTED = re.compile(r"[^,\r\n]*")
_QUOTED = re.compile(r'[^"]*')
_TERMINATORS = ("\r", "\n")


def _scan(text: str, state: int) -> tuple[int, bool, str]:
    """Advance csv's state over one piece of a physical line: (state, record ended, syntax error). Follows the csv
    module's reader (a quote opens a quoted field only at a field's start; in strict mode a quote followed by
    anything but a quote, comma or line end is an error, and the rest of that line belongs to the broken record)."""
    pos, n, error = 0, len(text), ""
    while pos < n:
        if state == _SKIP_LINE:
            break
        if state in (_START_RECORD, _START_FIELD):
            char = text[pos]
            if char == '"':
                state, pos = _IN_QUOTED, pos + 1
                continue
            if char in _TERMINATORS:
                return _START_RECORD, True, error
            if char == ",":
                state, pos = _START_FIELD, pos + 1
                continue
            state = _IN_FIELD
        if state == _IN_FIELD:
            pos = _UNQUOTED.match(text, pos).end()
            if pos < n:
                if text[pos] == ",":
                    state, pos = _START_FIELD, pos + 1
                else:
                    return _START_RECORD, True, error
        elif state == _IN_QUOTED:
            pos = _QUOTED.match(text, pos).end()
            if pos < n:
                state, pos = _QUOTE_IN_QUOTED, pos + 1
        elif state == _QUOTE_IN_QUOTED:
            char = text[pos]
            if char == '"':
                state, pos = _IN_QUOTED, pos + 1
            elif char == ",":
                state, pos = _START_FIELD, pos + 1
            elif char in _TERMINATORS:
                return _START_RECORD, True, error
            else:
                state, error = _SKIP_LINE, "CSV syntax error: ',' expected after '\"'"
    if state == _SKIP_LINE and text.endswith(_TERMINATORS):
        return _START_RECORD, True, error
    return state, False, error


def _records(text_stream, limit: int):
    """(first line, record text or None when over ``limit`` characters, problem) for every record, streamed.
    Line numbers count physical lines (a quoted prompt may span several); the header is line 1."""
    line, start, state = 1, 1, _START_RECORD
    parts: list[str] | None = []
    size, problem = 0, ""
    while True:
        piece = text_stream.readline(_PIECE_CHARS)
        if not piece:
            break
        state, ended, error = _scan(piece, state)
        problem = problem or error
        size += len(piece)
        if parts is not None:
            if size > limit:
                parts = None
            else:
                parts.append(piece)
        if piece.endswith(_TERMINATORS):
            line += 1
        if ended:
            yield start, ("".join(parts) if parts is not None else None), problem
            start, parts, size, problem = line, [], 0, ""
            limit = MAX_RECORD_CHARS
    if size:
        if state == _IN_QUOTED:
            problem = problem or "CSV syntax error: a quoted field is never closed (unexpected end of data)"
        yield start, ("".join(parts) if parts is not None else None), problem


def _split_record(text: str) -> list[str]:
    record = next(csv.reader(io.StringIO(text, newline=""), strict=True), [])
    if any(len(cell) > MAX_FIELD_CHARS for cell in record):
        raise csv.Error(f"field larger than field limit ({MAX_FIELD_CHARS})")
    return record


def _record_problem(text: str | None, problem: str, limit: int) -> tuple[list[str] | None, str]:
    if text is None:
        return None, f"row longer than {limit:,} characters (an unclosed quote?)"
    if problem:
        return None, problem
    if any("\udc80" <= char <= "\udcff" for char in text):
        return None, "not UTF-8 text"
    try:
        return _split_record(text), ""
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            return None, f"a field is longer than {MAX_FIELD_CHARS:,} characters"
        return None, f"CSV syntax error: {exc}"


def _parse_stream(raw, on_error: str, source: str) -> PairsData:
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    hashing = _HashingReader(raw)
    buffered = io.BufferedReader(hashing, buffer_size=_SNIFF_BYTES)
    if b"\0" in buffered.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]:
        raise DatasetError(f"{source}: not a pairs CSV (binary content); expected a text file whose first line is "
                           f"the header {', '.join(COLUMNS)}")
    text = io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="surrogateescape", newline="")
    records = _records(text, MAX_HEADER_CHARS)
    columns, n_header = _read_header(records, source)
    rows: list[PairRow] = []
    problems: list[RowProblem] = []
    for start, record_text, problem in records:
        record, reason = _record_problem(record_text, problem, MAX_RECORD_CHARS)
        if reason:
            problems.append(RowProblem(start, reason))
            continue
        if not record or all(not cell.strip() for cell in record):
            continue  # blank line
        row, reason = _validate(record, columns, n_header, start)
        if reason:
            problems.append(RowProblem(start, reason))
        else:
            rows.append(row)
    while text.read(_PIECE_CHARS):  # hash to the end (the last record may end early on a syntax error)
        pass
    if problems and on_error == "stop":
        raise DatasetError(_problem_message(source, problems, len(rows)), problems)
    if not rows:
        listed = "; ".join(str(problem) for problem in problems[:MAX_LISTED])
        raise DatasetError(f"{source}: no usable rows" + (f" ({len(problems)} malformed: {listed})" if problems
                                                          else ""), problems)
    return PairsData(rows=rows, skipped=problems, content_hash=hashing.digest.hexdigest(), source=source)


def _read_header(records, source: str) -> tuple[dict[str, int], int]:
    expected = f"expected a header with {', '.join(COLUMNS)}"
    try:
        _start, text, problem = next(records)
    except StopIteration:
        raise DatasetError(f"{source}: empty file ({expected})") from None
    if text is None:
        raise DatasetError(f"{source}: not a pairs CSV: line 1 is longer than {MAX_HEADER_CHARS:,} characters "
                           f"({expected})")
    if problem or any("\udc80" <= char <= "\udcff" for char in text):
        raise DatasetError(f"{source}: not a pairs CSV: line 1 is not a CSV header in UTF-8 ({expected})")
    try:
        header = _split_record(text)
    except csv.Error:
        raise DatasetError(f"{source}: not a pairs CSV: line 1 is not a CSV header ({expected})") from None
    names = [cell.strip() for cell in header]
    missing = [name for name in COLUMNS if name not in names]
    if missing:
        message = f"{source}: line 1: header lacks column(s) {', '.join(missing)}; {expected}"
        unknown = [name for name in names if name not in COLUMNS]
        if len(missing) <= 3 and len(names) <= 50 and all(len(name) <= 64 for name in unknown):
            # enough of the published columns to be a pairs CSV: the other cells are its (misspelt?) column names
            message += f"; other columns: {', '.join(repr(name) for name in unknown) or 'none'}"
        raise DatasetError(message)
    return {name: names.index(name) for name in COLUMNS}, len(names)


def _validate(record: list[str], columns: dict[str, int], n_header: int, line: int) -> tuple[PairRow | None, str]:
    if len(record) < n_header:
        return None, f"{len(record)} fields, expected {n_header} (missing columns)"
    if len(record) > n_header:  # most often an unquoted comma inside a prompt: the columns are shifted
        return None, f"{len(record)} fields, expected {n_header} (unquoted comma in a prompt?)"
    cell = {name: record[index].strip() for name, index in columns.items()}
    values = {}
    for name in ("Arousal", "Valence"):
        try:
            value = float(cell[name])
        except ValueError:
            return None, f"{name} {cell[name]!r} is not a number"
        if not math.isfinite(value) or abs(value) > VA_LIMIT:
            return None, f"{name} {value:g} is outside [-{VA_LIMIT:g}, {VA_LIMIT:g}]"
        values[name] = value
    for name in ("Neutral_Prompt", "Emotional_Prompt"):
        if not cell[name]:
            return None, f"{name} is empty"
    return PairRow(line=line, id=cell["Id"], arousal=values["Arousal"], valence=values["Valence"], tag=cell["Tag"],
                   dataset=cell["Dataset"], neutral=cell["Neutral_Prompt"], emotional=cell["Emotional_Prompt"]), ""


def _problem_message(source: str, problems: list[RowProblem], n_good: int) -> str:
    listed = "; ".join(str(problem) for problem in problems[:MAX_LISTED])
    more = f"; ... ({len(problems) - MAX_LISTED} more)" if len(problems) > MAX_LISTED else ""
    return (f"{source}: {len(problems)} malformed row(s) ({n_good} good): {listed}{more}. "
            "Fix them, or use on_error='skip' to train on the good rows only.")
