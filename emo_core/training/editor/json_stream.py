"""Stream the elements of a JSON list (``[{...}, {...}, ...]``) from a text file without building the whole tree.

A 340k-record EmoPair JSON parsed at once holds every record as Python objects (hundreds of MiB); this reads
``_CHUNK`` characters at a time and decodes one element at a time with the json module's C decoder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

_CHUNK = 1 << 20
_LOOKAHEAD = 64  # characters that must follow a decoded element (or the file end) before it is taken as complete
MAX_RECORD_CHARS = 1 << 20  # an element larger than this is a broken file, not a record
_BLANK = re.compile(r"[ \t\r\n]*")  # JSON's whitespace


def json_array_items(handle, source: str, error: type[Exception] = ValueError) -> Iterator[object]:
    """The elements of the top-level JSON array in the text file ``handle``, one at a time. Problems raise ``error``
    with a message starting with ``source`` and naming the record (1-based) and line."""
    decoder, buffer, pos, eof = json.JSONDecoder(), "", 0, False
    lines_before = 0  # newlines in the text already dropped from the buffer (for error messages)

    def more() -> bool:
        nonlocal buffer, pos, eof, lines_before
        chunk = handle.read(_CHUNK)
        lines_before += buffer.count("\n", 0, pos)
        buffer, pos, eof = buffer[pos:] + chunk, 0, not chunk
        return bool(chunk)

    def skip_blank() -> str:
        nonlocal pos
        while True:
            pos = _BLANK.match(buffer, pos).end()
            if pos < len(buffer) or not more():
                return buffer[pos] if pos < len(buffer) else ""

    def decode(number: int):
        while True:
            try:
                try:
                    value, end = decoder.raw_decode(buffer, pos)
                except RecursionError:  # the C decoder recurses once per nesting level
                    raise error(f"{source}: record {number}: nested too deeply (lists or objects inside each other "
                                "hundreds of levels deep); a record is one flat object") from None
                if end + _LOOKAHEAD <= len(buffer) or eof:
                    return value, end  # (a number cut at the chunk's end would decode short: look ahead)
            except json.JSONDecodeError as exc:
                cut = exc.msg.startswith("Unterminated") or exc.pos + _LOOKAHEAD > len(buffer)  # chunk ended in it
                if not cut or eof:
                    line = buffer.count("\n", 0, exc.pos) + lines_before
                    raise error(f"{source}: record {number}: not valid JSON ({exc.msg}) near line {line + 1}"
                                ) from None
            if len(buffer) - pos > MAX_RECORD_CHARS:
                raise error(f"{source}: record {number} is larger than {MAX_RECORD_CHARS:,} characters "
                            "(a broken file?)")
            more()  # at the end of the file this sets eof, and the next try is final

    if skip_blank() != "[":
        raise error(f"{source}: expected a JSON list of records starting with '['")
    pos += 1
    if skip_blank() == "]":
        pos += 1
    else:
        number = 0
        while True:
            number += 1
            skip_blank()
            value, pos = decode(number)
            yield value
            sep = skip_blank()
            pos += 1
            if sep == "]":
                break
            if sep != ",":
                raise error(f"{source}: after record {number}: expected ',' or ']', got "
                            f"{sep or 'the end of the file'!r}")
    if skip_blank():
        raise error(f"{source}: unexpected text after the closing ']' of the list")
