"""The worker zygote of the command's pool, started at the command's entry.

The zygote imports torch and a worker's modules (seconds; the slowest part of a worker's start).
Started by the pool, it begins only after the conductor has imported torch itself and loaded the
problem, so the two import one after the other. ``start`` runs the zygote at once, before the
conductor imports anything heavy (this module and what it imports never import torch), so both
import at the same time; the pool then ``adopt``s it.

The pool adopts it only if it is exactly the zygote the pool would start: the same device,
network setting and environment (anything that changed in between, e.g. a GPU chosen by
``--device NAME:N``, means a fresh one is started as before). Whatever is not adopted is ended
by ``discard`` (the command calls it when it returns, and at the time limit's last resort).
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from akg.harness import sandbox
from akg.harness import zygote as zygote_module
from akg.processes import kill_group


@dataclass(frozen=True)
class Prestarted:
    device: str
    network: bool
    env: tuple[tuple[str, str], ...]
    root: Path                      # the pool's directory (scratch, logs): the pool takes it over
    zygote: "zygote_module.Zygote"


_lock = threading.Lock()
_held: Prestarted | None = None


def enabled() -> bool:
    """Workers are forked from a zygote on Linux unless AKG_WORKER_START=exec asks for each to
    start afresh."""
    return sys.platform.startswith("linux") and os.environ.get("AKG_WORKER_START", "fork") != "exec"


def environment(device: str, root: Path) -> dict[str, str]:
    """The zygote's environment: a worker's (secrets left out), with the pool's directory as
    scratch and what the DSLs ask for on ``device``; each child then takes its own."""
    from akg import plugins
    env = sandbox.worker_environment(root, sandbox.cache_dirs(root))
    env.update(plugins.worker_environment(device))
    return env


def start(device: str, network: bool) -> None:
    """Start the zygote for a pool on ``device`` now (at most one is held; a second call is a no-op)."""
    global _held
    if not enabled():
        return
    with _lock:
        if _held is not None:
            return
        root = Path(tempfile.mkdtemp(prefix="akg-harness-"))
        env = environment(device, root)
        try:
            zygote = zygote_module.Zygote(device, env, network, root, root / "zygote.log")
        except OSError:
            shutil.rmtree(root, ignore_errors=True)
            return
        _held = Prestarted(device, network, tuple(sorted(env.items())), root, zygote)


def adopt(device: str, network: bool) -> Prestarted | None:
    """The zygote started by ``start``, handed over once, if it matches what a pool on ``device``
    would start now; otherwise None (a mismatched one is ended)."""
    global _held
    with _lock:
        held, _held = _held, None
    if held is None:
        return None
    if (held.device, held.network) == (device, network) and held.zygote.alive() \
            and tuple(sorted(environment(device, held.root).items())) == held.env:
        return held
    _end(held)
    return None


def discard() -> None:
    """End a zygote that no pool adopted (the command failed or stopped before its pool started)."""
    global _held
    with _lock:
        held, _held = _held, None
    if held is not None:
        _end(held)


def _end(held: Prestarted) -> None:
    # Killed, not asked to exit: no pool sent it work, so it has no children to end, and it may
    # still be importing (it would notice the request to exit only when done).
    kill_group(held.zygote.process, 10.0)
    held.zygote.close()
    shutil.rmtree(held.root, ignore_errors=True)
