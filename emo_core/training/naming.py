"""Names a user types for training outputs, and the files and folders the trainer may read or write.

``name_problem(name)`` is the one rule for a trained model's name, used both at queue time (the node's
``validate_inputs``) and at run time (``output_file``), so the two can never disagree:

- a ``str``, not empty;
- no control characters (NUL, newline, tab, DEL, C1 controls, ...), no Unicode bidirectional controls (U+061C,
  U+200E, U+200F, U+202A-U+202E, U+2066-U+2069: ``x\u202egnp.safetensors`` would display as another extension) and
  no other format characters (category Cf: zero-width spaces, joiners, ...); the message names the code point;
- a plain file name: none of ``/ \\ : * ? " < > |``;
- does not start with a dot or a space, does not end with a dot or a space (Windows drops those, other systems hide
  dot files), and is not only dots (``.``, ``..``);
- not a Windows device name (``CON``, ``PRN``, ``AUX``, ``NUL``, ``COM1``-``COM9``, ``LPT1``-``LPT9``, with or without
  an extension, any case);
- at most ``MAX_NAME_BYTES`` (200) bytes in UTF-8 (room for the suffixes the trainer adds within the usual 255-byte
  limit of a file name).

``inside(path, roots)`` resolves a path (symlinks and ``..``) and says whether it lies in one of the given folders.
``regular_file(path, ...)`` resolves a dataset file, refuses it outside given roots or when it is not a regular file
(a FIFO, a device, a folder: checked with ``os.stat``, never opened), and ``open_regular`` opens it without blocking
and checks the opened file again.
"""

from __future__ import annotations

import os
import stat
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from .. import safe_files
from ..safe_files import NotRegularFile, file_kind

MAX_NAME_BYTES = 200
FORBIDDEN_CHARS = '/\\:*?"<>|'
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f" + "".join(map(chr, range(0x202A, 0x202F)))
                          + "".join(map(chr, range(0x2066, 0x206A))))
_DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)), *(f"LPT{i}" for i in range(1, 10))}


def name_problem(name, what: str = "name") -> str | None:
    """Why ``name`` cannot be a trained model's file name (without extension), or None when it can."""
    if not isinstance(name, str):
        return f"{what}: expected text, got {type(name).__name__}"
    shown = repr(name if len(name) <= 60 else name[:60] + "...")
    if not name.strip():
        return f"{what}: the output file name is empty"
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        return f"{what}: {shown} contains control characters (NUL, newline, ...)"
    hidden = next((c for c in name if unicodedata.category(c) in ("Cc", "Cf") or c in BIDI_CONTROLS), None)
    if hidden is not None:
        kind = ("a bidirectional-text control" if hidden in BIDI_CONTROLS else "a control character"
                if unicodedata.category(hidden) == "Cc" else "an invisible format character")
        return (f"{what}: the name contains {kind}, U+{ord(hidden):04X} "
                f"({unicodedata.name(hidden, 'unnamed')}), which can make it display as another name; remove it")
    if any(c in name for c in FORBIDDEN_CHARS):
        return f"{what}: {shown} must be a plain file name (no folders, no / \\ : * ? \" < > |)"
    if name.strip(" .") == "" or name.startswith(".") or name != name.strip() or name.endswith("."):
        return f"{what}: {shown} must not start with a dot or a space, end with a dot or a space, or be only dots"
    if name.split(".")[0].strip().upper() in _DEVICE_NAMES:
        return f"{what}: {shown} is a reserved device name on Windows (CON, PRN, AUX, NUL, COM1, LPT1, ...)"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"{what}: {len(name.encode('utf-8', 'surrogatepass'))} bytes is too long for a file name " \
               f"(at most {MAX_NAME_BYTES})"
    return None


def check_name(name, what: str = "name") -> str:
    """``name`` itself, or ValueError with ``name_problem``'s message."""
    problem = name_problem(name, what)
    if problem:
        raise ValueError(problem)
    return name


def output_file(folder: str | os.PathLike, name: str, suffix: str, what: str = "name") -> Path:
    """``<folder>/<name><suffix>`` for a checked ``name``; the result is verified to lie directly in ``folder``."""
    check_name(name, what)
    folder = Path(folder)
    path = folder / f"{name}{suffix}"
    if path.parent != folder or path.name != f"{name}{suffix}":  # defence in depth: check_name already ensures it
        raise ValueError(f"{what}: {name!r} does not make a file inside {folder}")
    return path


def resolved(path: str | os.PathLike) -> Path:
    """The absolute path with every symlink and ``..`` resolved (the file need not exist)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def inside(path: str | os.PathLike, roots: Iterable[str | os.PathLike]) -> Path | None:
    """The root (resolved) that contains ``path`` after resolving symlinks and ``..``, or None."""
    real = resolved(path)
    for root in roots:
        real_root = resolved(root)
        try:
            if os.path.commonpath([real, real_root]) == str(real_root):
                return real_root
        except ValueError:  # other drive on Windows
            continue
    return None


def regular_file(path: str | os.PathLike, what: str, roots: Iterable[str | os.PathLike] | None = None,
                 error: type[Exception] = ValueError) -> Path:
    """The resolved ``path`` (symlinks and ``..``), refused with ``error`` when it lies outside every folder of
    ``roots`` (when given), is missing, or is not a regular file. Checked with ``os.stat`` only: nothing is opened,
    so a FIFO or a device never blocks, and nothing of the file is quoted."""
    real = resolved(path)
    if roots is not None and inside(real, roots) is None:
        listed = ", ".join(str(resolved(root)) for root in roots)
        raise error(f"{what}: {path} leads outside the folders it may be read from ({listed}); it was not read")
    try:
        mode = os.stat(real).st_mode
    except FileNotFoundError:
        raise error(f"{what}: cannot read {path} (not found)") from None
    except OSError as exc:
        raise error(f"{what}: cannot read {path} ({exc.strerror or exc})") from None
    if not stat.S_ISREG(mode):
        raise error(f"{what}: {path} is not a regular file ({file_kind(mode)}); give a file")
    return real


def open_regular(path: str | os.PathLike, what: str, error: type[Exception] = ValueError, **text):
    """``emo_core.safe_files.open_regular`` for a file ``regular_file`` accepted, failures as ``error`` naming
    ``what``."""
    try:
        return safe_files.open_regular(path, **text)
    except NotRegularFile as exc:
        raise error(f"{what}: {path} is {exc}; give a file") from None
    except OSError as exc:
        raise error(f"{what}: cannot read {path} ({exc.strerror or exc})") from None

