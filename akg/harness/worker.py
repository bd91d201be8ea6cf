"""Entry point of a worker process: ``python -m akg.harness.worker SETTINGS_JSON``.

Order matters: the network namespace is left before torch starts threads, resource limits are set
after torch is imported (the address-space limit is counted from there), and the audit hook and
integrity bindings exist before any candidate code runs. Heavy imports live in ``runner``.
"""
from __future__ import annotations

import faulthandler
import json
import os
import sys
from pathlib import Path

from akg.harness import sandbox


def main() -> None:
    settings = json.loads(sys.argv[1])
    faulthandler.enable()
    network_isolated = False if settings["network"] else sandbox.leave_network()

    from akg.harness import protocol, runner  # imports torch: threads start from here on

    read_fd, write_fd = settings["read_fd"], settings["write_fd"]
    state = runner.WorkerState(settings["device"], Path(settings["scratch"]))
    if settings["memory_limit_mb"] and not settings["device"].startswith(("cuda", "mps")):
        sandbox.limit_resources(settings["memory_limit_mb"], settings["max_processes"])
    else:
        sandbox.limit_resources(None, settings["max_processes"])
    writable = [Path(settings["scratch"])] + [Path(p) for p in settings["cache_dirs"]]
    sandbox.install_audit_hook(writable, block_sockets=not settings["network"])
    protocol.send(write_fd, {"op": "ready", "pid": os.getpid(), "network_isolated": network_isolated})
    serve(state, read_fd, write_fd, protocol)


def serve(state, read_fd: int, write_fd: int, protocol) -> None:
    while True:
        try:
            message = protocol.receive(read_fd)
        except protocol.PipeClosed:
            return
        if message.get("op") == "exit":
            return
        protocol.send(write_fd, state.handle(message))


if __name__ == "__main__":
    main()
