"""Entry point of a worker process: ``python -m akg.harness.worker SETTINGS_JSON``, or ``run`` in a
child forked by the zygote (``akg.harness.zygote``), which did the imports and left the network.

Order matters: the network namespace is left before torch starts threads; the device is set up
only when the conductor says so (a standby imports while another worker's candidate may be timed
on the same device); resource limits are set after that (the address-space limit is counted from
there); and the audit hook and integrity bindings exist before any candidate code runs. Heavy
imports live in ``runner``.
"""
from __future__ import annotations

import faulthandler
import json
import os
import socket
import sys
from pathlib import Path

from akg.harness import sandbox


def main() -> None:
    settings = json.loads(sys.argv[1])
    faulthandler.enable()
    network_isolated = False if settings["network"] else sandbox.leave_network()
    run(settings, network_isolated)


def preload() -> None:
    """Import what ``run`` imports (a zygote does this once, before it forks workers)."""
    from akg.harness import messages, protocol, runner  # noqa: F401  imports torch: threads start here


def run(settings: dict, network_isolated: bool) -> None:
    """The worker, from its imports on: started afresh by ``main``, or forked by the zygote."""
    from akg.harness import messages, protocol, runner  # imports torch: threads start from here on

    read_fd, write_fd = settings["read_fd"], settings["write_fd"]
    try:
        probe = protocol.probe()
    except (OSError, AttributeError):
        probe = None  # no sealable memory files here: every tensor travels in the pipe
    protocol.send(write_fd, messages.Hello(os.getpid(), network_isolated, probe).to_wire())
    # The device is touched only once the conductor says so: a standby starts while another
    # worker's candidate may be timed on the same device.
    if not _wait_for_start(read_fd, protocol):
        return
    state = runner.WorkerState(settings["device"], Path(settings["scratch"]))
    # The conductor sends no limit for backends whose drivers map more address space than memory.
    sandbox.limit_resources(settings["memory_limit_mb"] or None, settings["max_processes"])
    channel = socket.socket(fileno=settings["channel_fd"])  # before the hook refuses sockets
    writable = [Path(settings["scratch"])] + [Path(p) for p in settings["cache_dirs"]]
    sandbox.install_audit_hook(writable, block_sockets=not settings["network"])
    protocol.send(write_fd, messages.Started().to_wire())
    serve(state, read_fd, write_fd, channel, protocol, messages)


def _wait_for_start(read_fd: int, protocol) -> bool:
    try:
        return protocol.receive(read_fd).get("op") == "start"
    except protocol.PipeClosed:
        return False


def serve(state, read_fd: int, write_fd: int, channel, protocol, messages) -> None:
    while True:
        try:
            wire = protocol.receive(read_fd)
        except protocol.PipeClosed:
            return
        protocol.release_exported()  # the conductor mapped them before it sent this message
        try:
            message = messages.request_from_wire(protocol.receive_passed(wire, channel))
        except protocol.ProtocolError as e:
            protocol.send(write_fd, messages.Failure(str(e)).to_wire())
            continue
        if isinstance(message, messages.Exit):
            return
        if isinstance(message, messages.Share):  # the conductor's answer to the probe; no reply
            protocol.share_tensors(message.enabled)
            continue
        protocol.send(write_fd, state.handle(message).to_wire())


if __name__ == "__main__":
    main()
