"""Opening a file a user named without trusting it: regular files only, opened without blocking (a FIFO or a device
given as a dataset or image would otherwise hang the reader until someone writes to it)."""

from __future__ import annotations

import os
import stat

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOCTTY", 0)


class NotRegularFile(OSError):
    """The path names a folder, FIFO, device or socket; the message says which."""


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words."""
    for test, kind in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a plain file"


def open_regular(path: str | os.PathLike, **text):
    """``open(path)`` in binary mode, or text mode with ``text`` (encoding=..., errors=..., newline=...), opened
    non-blocking and checked after opening (a file swapped for a FIFO after a listing is refused, not waited on).
    Raises ``NotRegularFile``, or the OSError of ``os.open``."""
    fd = os.open(path, _FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFile(f"not a regular file ({file_kind(mode)})")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "r" if text else "rb", **text)
    except BaseException:
        os.close(fd)
        raise
