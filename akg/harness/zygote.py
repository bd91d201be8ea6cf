"""Starting workers by fork from a process that has already imported what a worker imports.

A worker process runs one candidate and is then replaced, so a fresh process is needed for every
candidate. Started with ``python -m akg.harness.worker``, each pays for importing torch, its compiler
stack and the DSLs (seconds, more on a busy or slow-disk host) before it can judge anything. The
zygote pays that once: it leaves the network (as a worker would), imports the worker's modules,
then forks one child per request. A child sets up the rest of a worker's isolation itself (its own
process group, working directory, environment, log, resource limits and audit hook come later in
``worker.run``) before any candidate code exists, exactly as a worker started afresh does.

Never touches the device: a fork of a process that has set up a device is unusable, so the device
is set up in each child, when the conductor says so.

Conductor side: ``Zygote`` (start, ``spawn``) and ``ForkedProcess``, a child seen through the
part of ``subprocess.Popen`` that the pool uses (``pid``, ``poll``, ``wait``). Zygote side: ``main``.
"""
from __future__ import annotations

import ctypes
import faulthandler
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

from akg.processes import kill_group, kill_pid_group

MAX_MESSAGE = 1 << 20   # a request: the worker's settings and its environment
READY_TIMEOUT_S = 180.0  # importing torch on a loaded machine


class ZygoteError(Exception):
    """The zygote is gone or never became ready; the caller starts workers the ordinary way."""


class ForkedProcess:
    """A worker forked by the zygote, seen as the pool sees a ``subprocess.Popen``. The zygote
    sends the child's pid once it has forked it and its exit status once it has reaped it, on a
    socket of this child's own; until the pid arrives (the zygote may still be importing) the
    child does not exist yet."""

    def __init__(self, status: socket.socket, args: list[str]) -> None:
        self._status = status
        self.args = args
        self.returncode: int | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The child's pid, waiting for the fork; None when the zygote died before forking it."""
        if self._pid is None:
            self._read(READY_TIMEOUT_S, until_pid=True)
        return self._pid

    def known_pid(self) -> int | None:
        """The pid if the fork has happened, without waiting (nor for a thread that waits)."""
        if self._pid is None and self._lock.acquire(blocking=False):
            self._lock.release()
            self._read(0.0, until_pid=True)
        return self._pid

    def kill(self) -> None:
        """SIGKILL the child (not its group), as ``Popen.kill`` does."""
        pid = self.pid
        if pid is not None and self.poll() is None:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def poll(self) -> int | None:
        self._read(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._read(timeout)
        if self.returncode is None:
            raise subprocess.TimeoutExpired(self.args, timeout)
        return self.returncode

    def _read(self, timeout: float | None, until_pid: bool = False) -> None:
        """Read the zygote's messages on this child's socket until the exit status (or, with
        ``until_pid``, the pid) has arrived or ``timeout`` seconds have passed."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self.returncode is None and not (until_pid and self._pid is not None):
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    readable, _, _ = select.select([self._status], [], [], left)
                except (OSError, ValueError):
                    readable = []
                if not readable:
                    return
                try:
                    data = self._status.recv(4096)
                except OSError:
                    data = b""
                if not data:   # the zygote died: a child it forked was killed with it, or never existed
                    self.returncode = -signal.SIGKILL
                    self._status.close()
                    return
                message = json.loads(data)
                if "pid" in message:
                    self._pid = int(message["pid"])
                if "exit" in message:
                    self.returncode = int(message["exit"])
                    self._status.close()


class Zygote:
    """The forking process of one worker pool, started at once; it imports while the conductor
    goes on, and answers requests from then on. ``spawn`` never waits for it."""

    def __init__(self, device: str, env: dict[str, str], network: bool, cwd: Path, log: Path) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        settings = {"fd": theirs.fileno(), "network": network, "device": device}
        with open(log, "wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "akg.harness.zygote", json.dumps(settings)], pass_fds=(theirs.fileno(),),
                cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        theirs.close()
        self._socket, self._lock = ours, threading.Lock()
        self._ready: bool | None = None
        self.network_isolated = False

    def spawn(self, settings: dict, env: dict[str, str], cwd: Path, log: Path, fds: tuple[int, ...]) -> ForkedProcess:
        """Ask for a worker with ``settings`` whose descriptors are ``fds`` (read, write, channel,
        in that order: the child finds them under new numbers). Raises ZygoteError when the zygote
        is known to be gone; a zygote that dies later shows as a child killed by SIGKILL."""
        status_ours, status_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"settings": settings, "env": env, "cwd": str(cwd), "log": str(log)}).encode()
        try:
            with self._lock:
                if self.process.poll() is not None:
                    raise ZygoteError(f"the worker zygote exited with status {self.process.returncode}")
                socket.send_fds(self._socket, [request], [*fds, status_theirs.fileno()])
        except OSError as e:
            status_ours.close()
            raise ZygoteError(f"the worker zygote did not take a request ({e})") from None
        finally:
            status_theirs.close()
        return ForkedProcess(status_ours, [sys.executable, "-m", "akg.harness.zygote"])

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """End the zygote; children it forked end with it (it kills them as it goes)."""
        with self._lock:
            try:
                self._socket.close()   # the zygote sees EOF, kills its children and exits
            except OSError:
                pass
        try:
            self.process.wait(5.0)
        except subprocess.TimeoutExpired:
            kill_group(self.process, 5.0)


# ---- zygote side ------------------------------------------------------------------------------

def main() -> None:
    settings = json.loads(sys.argv[1])
    faulthandler.enable()
    _end_with_parent()
    from akg.harness import sandbox
    # Before any import starts a thread (unshare of a user namespace fails in a threaded process);
    # every child is forked inside the namespace.
    network_isolated = False if settings["network"] else sandbox.leave_network()
    from akg.harness import worker
    worker.preload()
    from akg import plugins
    plugins.preload_worker(settings["device"])
    requests = socket.socket(fileno=settings["fd"])
    _serve(requests, network_isolated, worker)


def _end_with_parent() -> None:
    """Die when the conductor dies, even by SIGKILL (Linux's parent-death signal)."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:
        os._exit(0)


def _serve(requests: socket.socket, network_isolated: bool, worker) -> None:
    children: dict[int, socket.socket] = {}
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    try:
        while True:
            readable, _, _ = select.select([requests, wake_r], [], [])
            if wake_r in readable:
                _drain(wake_r)
                _reap(children)
            if requests in readable:
                try:
                    data, fds, _, _ = socket.recv_fds(requests, MAX_MESSAGE, 8)
                except OSError:
                    data, fds = b"", []
                if not data:
                    return   # the conductor is done
                _fork(json.loads(data), fds, children, [requests.fileno(), wake_r, wake_w], network_isolated, worker)
    finally:
        for pid in children:
            kill_pid_group(pid)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        status_socket = children.pop(pid, None)
        if status_socket is None:
            continue
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        try:
            status_socket.send(json.dumps({"exit": code}).encode())
        except OSError:
            pass   # the conductor stopped listening for this child
        status_socket.close()


def _fork(request: dict, fds: list[int], children: dict[int, socket.socket], own_fds: list[int],
          network_isolated: bool, worker) -> None:
    status = socket.socket(fileno=fds[-1])
    pid = os.fork()
    if pid == 0:
        keep = set(fds[:-1])
        for fd in own_fds + [s.fileno() for s in children.values()] + [status.fileno()]:
            if fd not in keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        _child(request, fds[:-1], network_isolated, worker)   # never returns
    for fd in fds[:-1]:
        os.close(fd)
    children[pid] = status
    _await_own_group(pid)
    try:
        status.send(json.dumps({"pid": pid}).encode())
    except OSError:
        pass


def _await_own_group(pid: int, timeout_s: float = 5.0) -> None:
    """Wait until the child leads its own process group (its first act): the conductor kills a
    worker by its group, and a kill sent before that would miss it."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if os.getpgid(pid) == pid:
                return
        except ProcessLookupError:
            return   # it is gone already; the reaper reports how
        time.sleep(0.0005)


def _child(request: dict, fds: list[int], network_isolated: bool, worker) -> None:
    """Become the worker a fresh ``python -m akg.harness.worker`` would be, then run it."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()   # its own process group: killing it takes every child along
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None   # TMPDIR is this worker's scratch now
        settings = dict(request["settings"])
        settings["read_fd"], settings["write_fd"], settings["channel_fd"] = fds
        worker.run(settings, network_isolated)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


if __name__ == "__main__":
    main()
