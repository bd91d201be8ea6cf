"""Framed messages between the conductor and a worker over two pipes.

A message is a dict of plain values and tensors, serialised with ``torch.save`` and read back
with ``torch.load(weights_only=True)``: the conductor never unpickles arbitrary objects from an
untrusted worker, so a candidate that writes to the pipe can at worst send a malformed message.

Large tensors from a worker do not cross the pipe: pickling and piping hundreds of MB costs
seconds per reply. The worker copies them into a memory file (memfd) and seals it against every
further write, shrink or growth; the message carries a handle, and the conductor maps the file
through ``/proc/<worker>/fd`` after checking the seals. The kernel enforces the seals, so what the
conductor reads is the snapshot taken when the worker exported it, whatever the worker does later.

The other way, the conductor's inputs of a test case travel the same way, drawn once and kept
in sealed files. A worker lives in its own user namespace and cannot open the conductor's
``/proc`` entries, so those files are passed over a Unix socket (SCM_RIGHTS) with the request.

On an accelerator nothing crosses to the host: the conductor's inputs, drawn on the device, go to
the worker as inter-process memory handles (``share_device``, through torch.multiprocessing's
reductions), and the worker copies its outputs into device buffers the conductor owns and passed
the same way. Handles only ever travel from the conductor to the worker: the conductor never
opens memory a worker names (a forged handle could make it read out of bounds).
"""
from __future__ import annotations

import fcntl
import io
import math
import mmap
import os
import select
import socket
import stat
import struct
import time

import torch

_HEADER = struct.Struct("<Q")
MAX_MESSAGE_BYTES = 8 << 30

# Tensors smaller than this travel inline: a memory file per tiny tensor costs more than it saves.
SHARE_MIN_BYTES = 1 << 20
_SEALS = fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
_SHARED_KEYS = frozenset({"shared_tensor", "nbytes", "dtype", "shape"})
SHARED_DTYPES = {name: getattr(torch, name) for name in (
    "float64", "float32", "float16", "bfloat16", "complex64", "complex128",
    "int64", "int32", "int16", "int8", "uint8", "bool")}
_PROBE = b"akg-probe"

# Bound now: the worker exports after candidate code has run.
_clone = torch.Tensor.clone
_copy = torch.Tensor.copy_
_frombuffer = torch.frombuffer


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


def send(fd: int, message: dict, channel: socket.socket | None = None) -> None:
    """Write ``message``; with ``channel``, the sealed files its handles name go along over it."""
    passed = _handle_fds(message) if channel is not None else []
    if passed:
        # Files first: the worker takes them from the socket when it reads the message.
        socket.send_fds(channel, [b"f"], passed)
        message = dict(message, passed_fds=passed)
    data = memoryview(encode(message))
    while data:
        written = os.write(fd, data)
        data = data[written:]


def receive(fd: int, timeout_s: float | None = None, peer: int | None = None) -> dict:
    """The next message; with ``peer`` (the sender's pid) its shared tensors are mapped."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    (size,) = _HEADER.unpack(_read_exact(fd, _HEADER.size, deadline))
    if size > MAX_MESSAGE_BYTES:
        raise ProtocolError(f"message of {size} bytes is larger than the limit")
    message = decode(_read_exact(fd, size, deadline))
    return message if peer is None else resolve(message, peer)


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


# ---- large tensors in sealed memory files ------------------------------------------------------

class _Outbox:
    """Worker side: whether large tensors go in memory files (the conductor turns it on after the
    probe worked), and the files of the last reply, open until the conductor has mapped them."""

    def __init__(self) -> None:
        self.enabled = False
        self.fds: list[int] = []


_outbox = _Outbox()


def share_tensors(enabled: bool) -> None:
    _outbox.enabled = bool(enabled) and hasattr(os, "memfd_create")


def release_exported() -> None:
    """Close the files of the previous reply: the conductor mapped them before its next request."""
    while _outbox.fds:
        os.close(_outbox.fds.pop())


def export(t: torch.Tensor):
    """A snapshot of a worker's tensor for the conductor: a handle to a sealed memory file for a
    large one, else a CPU copy that travels in the message."""
    nbytes = t.numel() * t.element_size()
    name = str(t.dtype).removeprefix("torch.")
    if not _outbox.enabled or nbytes < SHARE_MIN_BYTES or name not in SHARED_DTYPES:
        return _clone(t).detach().cpu()
    try:
        fd, handle = seal(t.detach())
    except OSError:  # no memory file to be had (descriptors, memory): the pipe still works
        return _clone(t).detach().cpu()
    _outbox.fds.append(fd)
    return handle


def seal(t: torch.Tensor) -> tuple[int, dict]:
    """A sealed memory file holding a copy of ``t`` (any device, any strides), and its handle."""
    nbytes = t.numel() * t.element_size()
    fd = _sealed_file(nbytes, lambda buffer: _copy(_frombuffer(buffer, dtype=t.dtype).view(t.shape), t))
    return fd, _handle(fd, nbytes, str(t.dtype).removeprefix("torch."), t.shape)


def _handle(fd: int, nbytes: int, dtype: str, shape) -> dict:
    """What a message carries in place of a tensor kept in memory file ``fd`` (``_SHARED_KEYS``)."""
    return {"shared_tensor": fd, "nbytes": nbytes, "dtype": dtype, "shape": list(shape)}


def receive_passed(message: dict, channel: socket.socket) -> dict:
    """Worker side: take the files a request's handles name from the socket and renumber the
    handles to them. A handle whose file did not arrive names no file (it fails to map)."""
    numbers = message.get("passed_fds")
    if not numbers:
        return message
    try:
        _, fds, _, _ = socket.recv_fds(channel, 1, len(numbers))
    except OSError:
        fds = []
    _outbox.fds.extend(fds)  # closed with the next message: mapped by then
    return _renumber(message, dict(zip(numbers, fds)))


def _handle_fds(message) -> list[int]:
    if isinstance(message, dict):
        if message.keys() == _SHARED_KEYS:
            return [message["shared_tensor"]]
        return [fd for v in message.values() for fd in _handle_fds(v)]
    if isinstance(message, (list, tuple)):
        return [fd for v in message for fd in _handle_fds(v)]
    return []


def _renumber(message, local: dict[int, int]):
    if isinstance(message, dict):
        if message.keys() == _SHARED_KEYS:
            return dict(message, shared_tensor=local.get(message["shared_tensor"], -1))
        return {k: _renumber(v, local) for k, v in message.items()}
    if isinstance(message, (list, tuple)):
        return type(message)(_renumber(v, local) for v in message)
    return message


def probe() -> dict:
    """A small sealed file the conductor tries to map once, to learn whether sharing works here."""
    fd = _sealed_file(len(_PROBE), lambda buffer: buffer.write(_PROBE))
    _outbox.fds.append(fd)
    return _handle(fd, len(_PROBE), "uint8", [len(_PROBE)])


def _sealed_file(nbytes: int, fill) -> int:
    fd = os.memfd_create("akg-tensor", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        os.ftruncate(fd, nbytes)
        with mmap.mmap(fd, nbytes) as buffer:
            fill(buffer)  # whatever fill made from the buffer is gone when it returns
        # Sealing against writes fails while a writable mapping exists, so none can remain.
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, _SEALS)
    except BaseException:
        os.close(fd)
        raise
    return fd


def probe_works(handle, pid: int) -> bool:
    """Conductor side: whether the worker's probe file can be mapped and holds what it should."""
    if not isinstance(handle, dict) or handle.keys() != _SHARED_KEYS:
        return False
    try:
        return bytes(_map_shared(handle, pid).numpy()) == _PROBE
    except ProtocolError:
        return False


def resolve(message, pid: int, device_handles: bool = False):
    """``message`` with every shared-tensor handle replaced by the tensor in process ``pid``'s file
    (the worker's outputs in the conductor; the conductor's inputs, passed on, in the worker).
    ``device_handles`` (worker side only) also opens the conductor's device-memory handles."""
    if isinstance(message, dict):
        if message.keys() == _SHARED_KEYS:
            return _map_shared(message, pid)
        if device_handles and message.keys() == _DEVICE_KEYS:
            return map_device(message)
        return {k: resolve(v, pid, device_handles) for k, v in message.items()}
    if isinstance(message, (list, tuple)):
        return type(message)(resolve(v, pid, device_handles) for v in message)
    return message


# ---- device memory by inter-process handles (conductor to worker only) --------------------------

_DEVICE_KEYS = frozenset({"device_tensor", "shape", "stride", "offset", "dtype", "device", "handle", "storage_bytes",
                          "storage_offset", "ref_counter", "ref_counter_offset", "event", "event_sync"})


def share_device(t: torch.Tensor) -> dict:
    """A handle to the device tensor ``t`` for a worker (no copy: the worker maps the same
    memory). ``t`` must stay alive in the conductor while a worker may use it."""
    from torch.multiprocessing import reductions
    _, args = reductions.reduce_tensor(t)
    (_cls, size, stride, offset, _storage_cls, dtype, device, handle, storage_bytes, storage_offset,
     _grad, ref_counter, ref_counter_offset, event, event_sync) = args
    return {"device_tensor": True, "shape": list(size), "stride": list(stride), "offset": int(offset),
            "dtype": str(dtype).removeprefix("torch."), "device": int(device), "handle": handle,
            "storage_bytes": int(storage_bytes), "storage_offset": int(storage_offset), "ref_counter": ref_counter,
            "ref_counter_offset": int(ref_counter_offset), "event": event, "event_sync": bool(event_sync)}


def map_device(handle: dict) -> torch.Tensor:
    """Worker side: the conductor's device tensor named by ``handle`` (``share_device``)."""
    from torch.multiprocessing import reductions
    if handle["dtype"] not in SHARED_DTYPES:
        raise ProtocolError("a device tensor handle names an unknown dtype")
    try:
        # The same rebuild torch.multiprocessing uses for a tensor it received (reduce_tensor).
        return reductions.rebuild_cuda_tensor(
                torch.Tensor, torch.Size(handle["shape"]), tuple(handle["stride"]), handle["offset"],
                torch.storage.TypedStorage, SHARED_DTYPES[handle["dtype"]], handle["device"], handle["handle"],
                handle["storage_bytes"], handle["storage_offset"], False, handle["ref_counter"],
                handle["ref_counter_offset"], handle["event"], handle["event_sync"])
    except (RuntimeError, TypeError, ValueError) as e:
        raise ProtocolError(f"cannot open a device tensor handle ({type(e).__name__}: {str(e)[:120]})") from None


def _map_shared(handle: dict, pid: int) -> torch.Tensor:
    fd, nbytes, dtype, shape = _handle_fields(handle)
    path = f"/proc/{pid}/fd/{fd}"
    try:
        # Look before opening: opening some other kind of file (a device) could have effects.
        if not os.readlink(path).startswith("/memfd:"):
            raise ProtocolError("a shared tensor is not in a memory file")
        local = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError as e:
        raise ProtocolError(f"cannot open a shared tensor ({e.strerror})") from None
    try:
        info = os.fstat(local)
        if not stat.S_ISREG(info.st_mode) or info.st_size != nbytes:
            raise ProtocolError("a shared tensor's file does not have the announced size")
        if fcntl.fcntl(local, fcntl.F_GET_SEALS) & _SEALS != _SEALS:
            raise ProtocolError("a shared tensor's file is not sealed against writes")
        # The file just checked, through this process's own descriptor. Mapped private and
        # copy-on-write (nothing written here reaches the file), holding no descriptor open.
        tensor = torch.from_file(f"/proc/self/fd/{local}", shared=False, size=math.prod(shape), dtype=dtype)
    except (OSError, RuntimeError) as e:
        raise ProtocolError(f"cannot map a shared tensor ({getattr(e, 'strerror', None) or type(e).__name__})") from None
    finally:
        os.close(local)
    return tensor.view(shape)


def _handle_fields(handle: dict) -> tuple[int, int, torch.dtype, list[int]]:
    fd, nbytes, name, shape = (handle[k] for k in ("shared_tensor", "nbytes", "dtype", "shape"))
    if (type(fd) is not int or fd < 0 or type(nbytes) is not int or nbytes <= 0 or name not in SHARED_DTYPES
            or not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape)):
        raise ProtocolError("malformed shared tensor handle")
    dtype = SHARED_DTYPES[name]
    if math.prod(shape) * dtype.itemsize != nbytes:
        raise ProtocolError("a shared tensor's shape does not match its size")
    return fd, nbytes, dtype, shape
