"""Framed messages between the conductor and a worker over two pipes.

A message is a dict of plain values and tensors, serialised with ``torch.save`` and read back
with ``torch.load(weights_only=True)``: the conductor never unpickles arbitrary objects from an
untrusted worker, so a candidate that writes to the pipe can at worst send a malformed message.
"""
from __future__ import annotations

import io
import os
import select
import struct
import time

import torch

_HEADER = struct.Struct("<Q")
MAX_MESSAGE_BYTES = 8 << 30


class ProtocolError(Exception):
    """The other side closed the pipe, timed out, or sent something that is not a message."""


class PipeClosed(ProtocolError):
    pass


class ReplyTimeout(ProtocolError):
    pass


def encode(message: dict) -> bytes:
    buffer = io.BytesIO()
    torch.save(message, buffer)
    payload = buffer.getvalue()
    return _HEADER.pack(len(payload)) + payload


def decode(payload: bytes) -> dict:
    try:
        message = torch.load(io.BytesIO(payload), weights_only=True, map_location="cpu")
    except Exception as e:
        raise ProtocolError(f"unreadable message ({type(e).__name__})") from None
    if not isinstance(message, dict):
        raise ProtocolError("message is not a dict")
    return message


def send(fd: int, message: dict) -> None:
    data = memoryview(encode(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def receive(fd: int, timeout_s: float | None = None) -> dict:
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes is larger than the limit")
    return decode(_read_exact(fd, size, deadline))


def _read_exact(fd: int, size: int, deadline: float | None) -> bytes:
    chunks, remaining = [], size
    while remaining:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise ReplyTimeout("no reply in time")
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            raise PipeClosed("the other side closed the pipe")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)
