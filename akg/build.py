"""Build processes: a DSL's ``prebuild`` runs in long-lived child processes, not in the conductor.

Compilers are slow and some are not thread-safe, so each build gets a process of its own (up to a
fixed number at once); a process serves many builds. They write into the same build caches the
workers read (the environment is inherited), so a worker loads compiled kernels instead of
compiling them in its timed path. Each process leads its own process group: ``kill`` (a time
limit running out) stops every compiler at once, and a killed build reports so in one line.

Protocol: one JSON object per line. Request {"dsl", "device", "source"}; reply {"error": str|null}.
"""
from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import shutil
import tempfile
import threading
from pathlib import Path

from akg.processes import kill_group

KILLED = "the build process was stopped before it finished (time limit reached)"


class Builders:
    """Up to ``count`` build processes for one DSL and device, started on first use."""

    def __init__(self, dsl: str, device: str, count: int) -> None:
        self.dsl, self.device, self.count = dsl, device, max(1, count)
        self._idle: queue.Queue[subprocess.Popen] = queue.Queue()
        self._live: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._started = 0
        self._closed = False
        self._scratch: Path | None = None

    def start(self) -> None:
        """Start every build process now (they import while the caller does other work), rather
        than on the first build."""
        with self._lock:
            if self._closed:
                return
            missing, self._started = self.count - self._started, self.count
        for _ in range(max(0, missing)):
            self._idle.put(self._spawn())

    def build(self, source: str) -> str | None:
        """The build error (one message), or None when the source built."""
        proc = self._take()
        if proc is None:
            return KILLED
        try:
            proc.stdin.write(json.dumps({"dsl": self.dsl, "device": self.device, "source": source}) + "\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
        except (OSError, ValueError):  # killed mid-request: its pipes are gone
            line = ""
        if not line:
            self._forget(proc)
            return KILLED if self._closed else f"the build process exited with status {proc.poll()}"
        self._idle.put(proc)
        try:
            return json.loads(line).get("error")
        except json.JSONDecodeError:
            return f"the build process sent a malformed reply: {line[:200]!r}"

    def _take(self) -> subprocess.Popen | None:
        with self._lock:
            if self._closed:
                return None
            start = self._idle.empty() and self._started < self.count
            if start:
                self._started += 1
        while not start:
            try:
                return self._idle.get(timeout=0.2)
            except queue.Empty:
                if self._closed:
                    return None
        return self._spawn()

    def _spawn(self) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-m", "akg.build"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, start_new_session=True, env=self._environment())
        with self._lock:
            self._live.add(proc)
        return proc

    def _environment(self) -> dict[str, str]:
        """The workers' environment (no secrets; the same build caches, which is the point)."""
        from akg.harness import sandbox
        if self._scratch is None:
            self._scratch = Path(tempfile.mkdtemp(prefix="akg-build-"))
        return sandbox.worker_environment(self._scratch, sandbox.cache_dirs(self._scratch))

    def _forget(self, proc: subprocess.Popen) -> None:
        _kill(proc)
        with self._lock:
            self._live.discard(proc)
            self._started -= 1

    def kill(self) -> None:
        """Stop every build now; builds in flight and later ones report KILLED."""
        with self._lock:
            self._closed = True
            live = list(self._live)
        for proc in live:
            _kill(proc)

    def close(self) -> None:
        self.kill()
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        with self._lock:
            live, self._live = list(self._live), set()
        for proc in live:
            for pipe in (proc.stdin, proc.stdout):
                try:
                    pipe.close()
                except OSError:
                    pass


def _kill(proc: subprocess.Popen) -> None:
    kill_group(proc, wait_s=5)


def main() -> None:
    # A build may run candidate code (a DSL that compiles by tracing a forward): like a worker,
    # leave the network before anything else starts a thread.
    from akg.harness import sandbox
    sandbox.leave_network()
    # Replies go to the original stdout; anything a compiler or plugin prints goes to stderr.
    reply = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    from akg import plugins
    from akg.targets import BuildError
    for line in sys.stdin:
        request = json.loads(line)
        try:
            plugins.get_dsl(request["dsl"]).prebuild(request["source"], request["device"])
            error = None
        except BuildError as e:
            error = str(e) or "build failed"
        except Exception as e:  # a plugin bug must not look like a compiler's verdict on the source
            error = f"prebuild raised {type(e).__name__}: {str(e).splitlines()[0][:500] if str(e) else ''}"
        reply.write(json.dumps({"error": error}) + "\n")
        reply.flush()


if __name__ == "__main__":
    main()
