"""Reading a user's folder of images without trusting it: regular files only, odd names and hostile images turned
into one-line reasons instead of hangs or tracebacks.

* ``regular_files(folder)``: the folder's entries that are regular files (``os.stat``, following symlinks, never
  opening anything), and the image-like entries that are not (a FIFO, a device, a folder, a dangling or looping
  symlink), each with its reason.
* ``name_problem(name)``: why a file name cannot name a cell (not valid UTF-8, or control characters such as a
  newline), or None.
* ``open_image(path)``: Pillow's image, opened without blocking (``O_NONBLOCK``, and the opened file must still be
  a regular file: a file swapped for a FIFO after the listing cannot hang the run), with images above Pillow's
  ``MAX_IMAGE_PIXELS`` (decompression bombs) refused; every failure is an ``ImageProblem`` saying why.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

from PIL import Image

from ..errors import EmoError
from ..safe_files import NotRegularFile, file_kind, open_regular

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class ImageProblem(EmoError, ValueError):
    """An image that cannot be used; the message is the reason (the caller names the file)."""


def looks_like_image(name: str) -> bool:
    """An image by its extension (trailing blanks and control characters ignored), or named like a cell."""
    stripped = "".join(c for c in name if c.isprintable()).rstrip()
    return stripped.lower().endswith(IMAGE_SUFFIXES) or name.startswith("V-A")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a cell (its prompt would be garbage, and its name cannot be shown or stored as
    text), or None."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "the file name is not valid UTF-8"
    if any(ord(c) < 32 or 0x7F <= ord(c) < 0xA0 for c in name):
        return "the file name holds control characters (newline, tab, ...)"
    return None


def regular_files(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """(regular files, [(image-like entry that is not a regular file, reason)]), both sorted by name."""
    files, others = [], []
    for path in sorted(folder.iterdir()):
        try:
            mode = os.stat(path).st_mode  # follows symlinks; never opens the file
        except OSError as exc:  # dangling or looping symlink, permission
            if looks_like_image(path.name):
                others.append((path, f"cannot be read ({exc.strerror or type(exc).__name__}): a dangling or looping "
                                     "symlink?"))
            continue
        if stat.S_ISREG(mode):
            files.append(path)
        elif looks_like_image(path.name):
            others.append((path, f"not a regular file ({file_kind(mode)})"))
    return files, others


@contextlib.contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """The image at ``path`` (lazily decoded: load or convert inside the ``with``); ``ImageProblem`` when it is not
    a regular file, too large for Pillow's decompression-bomb limit, or not an image Pillow can read."""
    try:
        handle = open_regular(path)
    except NotRegularFile as exc:
        raise ImageProblem(str(exc)) from None
    except OSError as exc:
        raise ImageProblem(f"cannot open it ({exc.strerror or type(exc).__name__})") from None
    with handle:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(handle) as image:
                    yield image
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageProblem(f"refused as a possible decompression bomb ({_first_line(exc).rstrip('.')})"
                               ) from None
        except (OSError, ValueError, EOFError, SyntaxError, struct.error, IndexError) as exc:
            # Pillow reports damaged or unknown files with all of these
            raise ImageProblem(f"not a readable image ({type(exc).__name__}: {_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    text = text.splitlines()[0] if text else "no details"
    return text if len(text) <= 200 else text[:200] + "..."
