"""Just enough of RFC 6455 for ComfyUI's /ws progress socket, with a deadline on every read (standard library)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import time
import urllib.parse

from .errors import BadAnswer, ServerGone, short

MAX_FRAME = 64 << 20  # the largest websocket message read (ComfyUI's previews are far smaller)
MAX_HEAD = 64 << 10  # the largest websocket handshake answer


class WebSocket:
    """Just enough RFC 6455 for ComfyUI's /ws: the handshake, then reading the server's (unmasked) frames.

    ``timeout`` bounds the handshake and each frame once it has begun (and, as before, each socket read);
    ``receive(wait=...)`` says how long to wait for the next frame to begin."""

    def __init__(self, url: str, timeout: float, max_frame: int = MAX_FRAME):
        u = urllib.parse.urlsplit(url)
        self.timeout, self.max_frame = timeout, max_frame
        self.buffer = bytearray()
        self.deadline: float | None = time.monotonic() + timeout  # of the operation under way, if any
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        try:
            self.sock.sendall(f"GET {u.path}?{u.query} HTTP/1.1\r\nHost: {u.netloc}\r\nUpgrade: websocket\r\n"
                              f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                              .encode())
            while b"\r\n\r\n" not in self.buffer:
                if len(self.buffer) > MAX_HEAD:
                    raise BadAnswer(f"websocket handshake: no end of the answer's head in {MAX_HEAD} bytes")
                self.buffer += self._recv()
        except TimeoutError:
            self.close()
            raise ServerGone(f"websocket handshake not answered within {timeout:g} s") from None
        except BaseException:
            self.close()
            raise
        finally:
            self.deadline = None
        head, rest = bytes(self.buffer).split(b"\r\n\r\n", 1)
        self.buffer = bytearray(rest)
        accept = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
        if not head.startswith(b"HTTP/1.1 101") or accept not in head:
            self.close()
            raise ServerGone(f"websocket handshake refused: {head[:200]!r}")

    def _recv(self) -> bytes:
        wait = self.timeout
        if self.deadline is not None:
            wait = min(wait, self.deadline - time.monotonic())
            if wait <= 0:
                raise TimeoutError("timed out")
        self.sock.settimeout(wait)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ServerGone("connection closed")
        return chunk

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            self.buffer += self._recv()
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def _send(self, opcode: int, payload: bytes) -> None:
        """A (masked, as a client must) control frame: ``payload`` of at most 125 bytes."""
        mask = os.urandom(4)
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask +
                          bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _message(self) -> tuple[int, bytes]:
        """The next data message (opcode 1 text, 2 binary), its fragments joined; answers pings on the way."""
        opcode, parts, size = None, [], 0
        while True:
            b0, b1 = self._read(2)
            fin, op, n = b0 & 0x80, b0 & 0x0F, b1 & 0x7F
            if b0 & 0x70:
                raise BadAnswer(f"websocket frame with reserved bits set (byte 0x{b0:02x}); no extension was agreed")
            if b1 & 0x80:
                raise BadAnswer("masked websocket frame from the server")
            if n >= 126:
                (n,) = struct.unpack(">H" if n == 126 else ">Q", self._read(2 if n == 126 else 8))
            if op >= 8 and (n > 125 or not fin):
                raise BadAnswer(f"malformed websocket control frame (opcode {op}, {n} bytes)")
            if size + n > self.max_frame:
                raise BadAnswer(f"websocket frame of {size + n} bytes (limit {self.max_frame})")
            payload = self._read(n)
            if op == 8:
                raise ServerGone("websocket closed by the server")
            if op == 9:
                self._send(10, payload)  # pong
                continue
            if op == 10:
                continue
            if op not in (0, 1, 2):
                raise BadAnswer(f"websocket frame with the unknown opcode {op}")
            if (op == 0) != (opcode is not None):
                raise BadAnswer("websocket continuation frame out of order")
            opcode = op if opcode is None else opcode
            parts.append(payload)
            size += n
            if fin:
                return opcode, b"".join(parts)

    def receive(self, wait: float | None = None) -> dict | None:
        """The next JSON message; None for binary frames (previews). Raises TimeoutError when no frame begins within
        ``wait`` seconds (default: the timeout), ServerGone when the server closes or a frame stalls midway past
        the timeout, BadAnswer when a frame is malformed, oversized, or not a JSON object."""
        if not self.buffer:
            self.deadline = time.monotonic() + max(self.timeout if wait is None else wait, 0.001)
            try:
                self.buffer += self._recv()
            finally:
                self.deadline = None
        self.deadline = time.monotonic() + self.timeout
        try:
            opcode, payload = self._message()
        except TimeoutError:
            raise ServerGone(f"websocket frame not completed within {self.timeout:g} s") from None
        finally:
            self.deadline = None
        if opcode == 2:
            return None
        try:
            message = json.loads(payload.decode())
        except (ValueError, RecursionError):
            raise BadAnswer(f"websocket text frame that is not JSON: {short(payload)}") from None
        if not isinstance(message, dict):
            raise BadAnswer(f"websocket message that is not a JSON object: {short(payload)}")
        return message

    def close(self) -> None:
        self.sock.close()
