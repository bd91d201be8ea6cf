"""Worker processes seen from the conductor: start, ask, time out, kill, replace.

A worker that crashed, hung, or ran a rejected candidate is killed with its whole process group
and replaced, so nothing a candidate left behind (patched modules, threads, children) meets the
next one.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from akg.harness import protocol, sandbox
from akg.harness.config import HarnessConfig
from akg.harness.errors import HarnessError


START_TIMEOUT_S = 120.0


class WorkerFault(Exception):
    """The worker died or stopped answering. ``kind`` is "crash" or "timeout"; the message is
    one line for the verdict."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Worker:
    """One worker process and its scratch directory."""

    def __init__(self, device: str, config: HarnessConfig, root: Path, index: int) -> None:
        self.device, self.config, self.index = device, config, index
        self.scratch = root / f"worker-{index}"
        self.root = root
        self.process: subprocess.Popen | None = None
        self.network_isolated = False
        self._ready = False
        self.start()

    def start(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        caches = sandbox.cache_dirs(self.root)
        for path in caches.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        settings = {
            "device": self.device, "scratch": str(self.scratch), "read_fd": to_worker_r,
            "write_fd": from_worker_w, "network": self.config.network,
            "memory_limit_mb": self.config.memory_limit_mb, "max_processes": self.config.max_processes,
            "cache_dirs": sorted(caches.values()),
        }
        self._log = open(self.scratch.parent / f"worker-{self.index}.log", "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "akg.harness.worker", json.dumps(settings)],
            pass_fds=(to_worker_r, from_worker_w), cwd=self.scratch, stdin=subprocess.DEVNULL,
            stdout=self._log, stderr=subprocess.STDOUT, env=sandbox.worker_environment(self.scratch, caches),
            start_new_session=True)  # its own process group: killing it takes every child along
        os.close(to_worker_r)
        os.close(from_worker_w)
        self._send_fd, self._recv_fd = to_worker_w, from_worker_r
        self._ready = False

    def _await_ready(self) -> None:
        if not self._ready:
            # Starting imports torch: on a loaded machine that alone can take many seconds.
            hello = self._receive(max(self.config.timeout_s, START_TIMEOUT_S), "starting")
            self.network_isolated = bool(hello.get("network_isolated"))
            self._ready = True

    def request(self, message: dict, timeout_s: float, phase: str) -> dict:
        self._await_ready()
        try:
            protocol.send(self._send_fd, message)
        except OSError:
            raise self._fault_from_exit(phase) from None
        return self._receive(timeout_s, phase)

    def _receive(self, timeout_s: float, phase: str) -> dict:
        try:
            return protocol.receive(self._recv_fd, timeout_s)
        except protocol.ReplyTimeout:
            self.kill()
            raise WorkerFault("timeout", f"no answer within {timeout_s:g}s while {phase}; the worker was killed") from None
        except protocol.PipeClosed:
            raise self._fault_from_exit(phase) from None
        except protocol.ProtocolError as e:
            self.kill()
            raise WorkerFault("crash", f"the worker sent a malformed reply while {phase} ({e})") from None

    def _fault_from_exit(self, phase: str) -> WorkerFault:
        code = self._wait_exit(2.0)
        self.kill()
        if code is None:
            return WorkerFault("crash", f"the worker closed its pipe while {phase}")
        if code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            return WorkerFault("crash", f"the worker was killed by {name} while {phase}{self._log_hint()}")
        return WorkerFault("crash", f"the worker exited with status {code} while {phase}{self._log_hint()}")

    def _wait_exit(self, timeout_s: float) -> int | None:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def _log_hint(self) -> str:
        try:
            lines = [l for l in Path(self._log.name).read_bytes().decode(errors="replace").splitlines() if l.strip()]
        except OSError:
            return ""
        last = next((l for l in reversed(lines) if "Error" in l or "error" in l or "Fatal" in l), "")
        return f" ({last.strip()[:200]})" if last else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self._wait_exit(10.0)
        for fd in (self._send_fd, self._recv_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._send_fd = self._recv_fd = -1
        self._log.close()

    def close(self) -> None:
        if self.alive():
            try:
                protocol.send(self._send_fd, {"op": "exit"})
                self.process.wait(2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        shutil.rmtree(self.scratch, ignore_errors=True)

    def replace(self) -> None:
        self.kill()
        self.start()


class Workers:
    """A fixed number of workers handed out one at a time (thread-safe)."""

    def __init__(self, device: str, count: int, config: HarnessConfig) -> None:
        if count < 1:
            raise HarnessError(f"workers must be at least 1, got {count}")
        self.root = Path(tempfile.mkdtemp(prefix="akg-harness-"))
        self._all = [Worker(device, config, self.root, i) for i in range(count)]
        self._idle: queue.Queue[Worker] = queue.Queue()
        for w in self._all:
            self._idle.put(w)


    def acquire(self) -> Worker:
        return self._idle.get()

    def release(self, worker: Worker, replace: bool) -> None:
        if replace or not worker.alive():
            worker.replace()
        self._idle.put(worker)

    def close(self) -> None:
        for w in self._all:
            w.close()
        shutil.rmtree(self.root, ignore_errors=True)
