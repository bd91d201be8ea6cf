"""Worker processes seen from the conductor: start, ask, time out, kill, replace.

A worker that ran a candidate (accepted or not, crashed, hung) is killed with its whole process
group and replaced, so nothing a candidate left behind (patched modules, threads, children) meets
the next one. The replacement is a process started earlier, while that candidate was being judged (a
standby that has loaded no candidate), so the next candidate does not wait for torch to import
and the device to initialise.
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from akg.harness import messages, protocol, sandbox
from akg.harness import prestart, zygote as zygote_module
from akg.harness.config import HarnessConfig
from akg.harness.errors import HarnessError
from akg.processes import kill_pid_group


START_TIMEOUT_S = 120.0


class ExecProcess(subprocess.Popen):
    """A worker started afresh; answers what a ``ForkedProcess`` answers (its pid is known at once)."""

    def known_pid(self) -> int | None:
        return self.pid


class WorkerFault(Exception):
    """The worker died or stopped answering. ``kind`` is "crash" or "timeout"; the message is
    one line for the verdict."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


class Worker:
    """One worker process and its scratch directory. A process is never restarted: a replacement
    is another Worker."""

    def __init__(self, device: str, config: HarnessConfig, root: Path, name: str,
                 zygote: "zygote_module.Zygote | None" = None) -> None:
        self.device, self.config, self.name = device, config, name
        self.zygote = zygote
        self.scratch = root / name
        self.root = root
        self.process: ExecProcess | zygote_module.ForkedProcess | None = None
        self.network_isolated = False
        self.standby: Worker | None = None   # the process that replaces this one, set by Workers
        self._ready = self._device_started = False
        self.start()

    def start(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        caches = sandbox.cache_dirs(self.root)
        for path in caches.values():
            Path(path).mkdir(parents=True, exist_ok=True)
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        self._channel, worker_channel = socket.socketpair()  # passes the conductor's sealed files
        self._channel.settimeout(self.config.timeout_s)
        settings = {
            "device": self.device, "scratch": str(self.scratch), "read_fd": to_worker_r,
            "write_fd": from_worker_w, "channel_fd": worker_channel.fileno(), "network": self.config.network,
            "memory_limit_mb": self.config.memory_limit_mb if self._backend().limits_address_space else 0,
            "max_processes": self.config.max_processes,
            "cache_dirs": sorted(caches.values()),
        }
        self._log = open(self.root / f"{self.name}.log", "wb")
        fds = (to_worker_r, from_worker_w, worker_channel.fileno())
        self.process = self._forked(settings, caches, fds) if self.zygote is not None else None
        if self.process is None:
            self.process = ExecProcess(
                [sys.executable, "-m", "akg.harness.worker", json.dumps(settings)],
                pass_fds=fds, cwd=self.scratch, stdin=subprocess.DEVNULL,
                stdout=self._log, stderr=subprocess.STDOUT, env=self._environment(caches),
                start_new_session=True)  # its own process group: killing it takes every child along
        os.close(to_worker_r)
        os.close(from_worker_w)
        worker_channel.close()
        self._send_fd, self._recv_fd = to_worker_w, from_worker_r
        self._ready = False

    def _forked(self, settings: dict, caches: dict[str, str], fds: tuple[int, ...]):
        """The worker as a child of the pool's zygote (no imports to wait for), or None where the
        zygote is gone: then it starts afresh."""
        try:
            return self.zygote.spawn(settings, self._environment(caches), self.scratch,
                                     Path(self._log.name), fds)
        except zygote_module.ZygoteError:
            return None

    def _backend(self):
        from akg import plugins
        return plugins.backend_for(self.device)

    def _environment(self, caches: dict[str, str]) -> dict[str, str]:
        from akg import plugins
        env = sandbox.worker_environment(self.scratch, caches)
        # Set before the worker imports anything: e.g. an interpreter a DSL's package reads at import.
        env.update(plugins.worker_environment(self.device))
        return env

    def start_device(self) -> None:
        """Let the process set up the device: after its imports it waits for this, so that a
        standby does not touch the device while another candidate is timed on it."""
        if not self._device_started:
            self._device_started = True
            try:
                protocol.send(self._send_fd, messages.Start().to_wire())
            except OSError:
                pass  # it died; the next request says how

    def _await_ready(self) -> None:
        if not self._ready:
            self.start_device()
            # Starting imports torch: on a loaded machine that alone can take many seconds.
            timeout_s = max(self.config.timeout_s, START_TIMEOUT_S)
            hello = self._typed(self._receive(timeout_s, "starting", resolve=False), messages.Hello, "starting")
            self.network_isolated = hello.network_isolated
            # Large tensors come back in sealed memory files where this conductor can map them.
            shared = protocol.probe_works(hello.probe, self.process.pid)
            self._typed(self._receive(timeout_s, "starting", resolve=False), messages.Started, "starting")
            self._send(messages.Share(shared).to_wire(), "starting")
            self._ready = True

    def settle_standby(self) -> None:
        """Before a measurement on a CPU, let the standby finish starting: its imports would
        compete for the cores being timed. On a GPU its imports may go on; it leaves the device
        alone until ``start_device``."""
        if self.standby is None or self._backend().standby_during_timing:
            return
        try:
            self.standby._await_ready()
        except WorkerFault:
            pass  # it was killed; the slot starts another when it needs one

    def request(self, message: messages.Message, reply: type, timeout_s: float, phase: str) -> messages.Message:
        """Send ``message``; the worker's answer as ``reply`` or ``messages.Failure``. A reply of any
        other shape means the worker is no longer the harness's: it is killed (a crash)."""
        self._await_ready()
        self._send(message.to_wire(), phase)
        return self._typed(self._receive(timeout_s, phase), reply, phase)

    def _typed(self, wire: dict, reply: type, phase: str) -> messages.Message:
        try:
            return messages.reply_from_wire(wire, reply)
        except protocol.ProtocolError as e:
            self.kill()
            raise WorkerFault("crash", f"the worker sent a malformed reply while {phase} ({e})") from None

    def _send(self, message: dict, phase: str) -> None:
        try:
            protocol.send(self._send_fd, message, self._channel)
        except OSError:
            raise self._fault_from_exit(phase) from None

    def _receive(self, timeout_s: float, phase: str, resolve: bool = True) -> dict:
        try:
            return protocol.receive(self._recv_fd, timeout_s, self.process.pid if resolve else None)
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
        kill_pid_group(self.process.pid)   # None: a forked one never forked (its zygote died)
        self._wait_exit(10.0)
        for fd in (self._send_fd, self._recv_fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self._send_fd = self._recv_fd = -1
        self._channel.close()
        self._log.close()

    def close(self) -> None:
        if self.alive() and self._ready:  # one still starting has nothing to finish: kill it
            try:
                protocol.send(self._send_fd, messages.Exit().to_wire())
                self.process.wait(2.0)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.discard()

    def discard(self) -> None:
        """Kill the process group and remove what it wrote in the pool's directory."""
        self.kill()
        shutil.rmtree(self.scratch, ignore_errors=True)
        Path(self._log.name).unlink(missing_ok=True)


class Workers:
    """A fixed number of workers handed out one at a time (thread-safe). With ``standby``, each
    handed-out worker gets a standby process that takes its place when it is replaced."""

    def __init__(self, device: str, count: int, config: HarnessConfig, standby: bool = True) -> None:
        if count < 1:
            raise HarnessError(f"workers must be at least 1, got {count}")
        # A zygote the command started at its entry (importing beside the conductor) comes with
        # its directory; otherwise the pool starts its own now.
        prestarted = prestart.adopt(device, config.network)
        self.root = prestarted.root if prestarted else Path(tempfile.mkdtemp(prefix="akg-harness-"))
        self._device, self._config, self._standby = device, config, standby
        self.count = count
        self._lock = threading.Lock()
        self._started = 0
        self._live: set[Worker] = set()
        self._idle: queue.Queue[Worker] = queue.Queue()
        self.zygote = prestarted.zygote if prestarted else start_zygote(device, config, self.root)
        for _ in range(count):
            worker = self._start()
            worker.start_device()  # nothing is timed yet
            self._idle.put(worker)

    def _start(self) -> Worker:
        with self._lock:
            name = f"worker-{self._started}"
            self._started += 1
        worker = Worker(self._device, self._config, self.root, name, self.zygote)
        with self._lock:
            self._live.add(worker)
        return worker

    def _discard(self, worker: Worker) -> None:
        worker.discard()
        with self._lock:
            self._live.discard(worker)

    def acquire(self) -> Worker:
        worker = self._idle.get()
        # Started now, it imports while this worker's candidate is judged; it sets up the device
        # when this worker's measurements are over (on a CPU, before they begin).
        if self._standby and (worker.standby is None or not worker.standby.alive()):
            if worker.standby is not None:
                self._discard(worker.standby)
            worker.standby = self._start()
        return worker

    def release(self, worker: Worker, replace: bool) -> None:
        if worker.standby is not None:
            worker.standby.start_device()  # this worker's measurements are over
        if not replace and worker.alive():
            self._idle.put(worker)
            return
        successor = worker.standby if worker.standby is not None and worker.standby.alive() else None
        if worker.standby is not None and successor is None:
            self._discard(worker.standby)
        worker.standby = None
        self._discard(worker)
        if successor is None:
            successor = self._start()
            successor.start_device()
        self._idle.put(successor)

    def pids(self, wait: bool = False) -> set[int]:
        """Processes of the pool's live workers and standbys: those forked so far, or with
        ``wait`` all of them (waiting for the zygote to fork those asked for)."""
        with self._lock:
            live = [w for w in self._live if w.alive()]
        pids = {w.process.pid if wait else w.process.known_pid() for w in live}
        return {pid for pid in pids if pid is not None}

    def close(self) -> None:
        with self._lock:
            live = list(self._live)
            self._live.clear()
        for w in live:
            w.close()
        if self.zygote is not None:
            self.zygote.close()
        shutil.rmtree(self.root, ignore_errors=True)


def start_zygote(device: str, config: HarnessConfig, root: Path) -> "zygote_module.Zygote | None":
    """The pool's zygote, where workers may be forked: on Linux, unless AKG_WORKER_START=exec asks
    for every worker to start afresh. Its environment is a worker's (secrets left out), with the
    pool's directory as scratch; each child then takes its own."""
    if not prestart.enabled():
        return None
    try:
        return zygote_module.Zygote(device, prestart.environment(device, root), config.network, root,
                                    root / "zygote.log")
    except OSError:
        return None
