"""Fault injection: each fault class fails its candidate with a recorded reason, the worker is
replaced, and the next (honest) candidate is still judged correctly by the same pool."""
from __future__ import annotations

import os
import textwrap
import time
from pathlib import Path


PROBLEM = Path(__file__).parent.parent / "adversarial" / "problems" / "scale_add.py"

HONEST = """
import torch
import torch.nn as nn
class ModelNew(nn.Module):
    def forward(self, x, y):
        return x * 2.0 + y
"""


def candidate(forward_body: str, prelude: str = "") -> str:
    return (f"import os, sys, time, ctypes, socket, subprocess\nimport torch\nimport torch.nn as nn\n"
            f"{textwrap.dedent(prelude)}\n"
            f"class ModelNew(nn.Module):\n    def forward(self, x, y):\n"
            + textwrap.indent(textwrap.dedent(forward_body), "        "))


def failed(verdict) -> dict[str, str]:
    return {c.name: c.detail for c in verdict.checks if not c.passed}


def judge_then_recover(pool, source: str, name: str):
    verdict = pool.evaluate(PROBLEM, source, name, policy="standard")
    assert not verdict.accepted
    after = pool.evaluate(PROBLEM, HONEST, f"honest-after-{name}", policy="standard")
    assert after.accepted, f"the pool did not recover after {name}: {after.reason}"
    return failed(verdict)


def test_segfault(fault_pool):
    checks = judge_then_recover(fault_pool, candidate("ctypes.string_at(0)\nreturn x"), "segfault")
    assert "SIGSEGV" in checks["worker_alive"]


def test_abort(fault_pool):
    checks = judge_then_recover(fault_pool, candidate("os.abort()"), "abort")
    assert "SIGABRT" in checks["worker_alive"]


def test_os_exit(fault_pool):
    checks = judge_then_recover(fault_pool, candidate("os._exit(7)"), "os_exit")
    assert "status 7" in checks["worker_alive"]


def test_exit_at_import(fault_pool):
    # SystemExit is an exception like any other: the worker survives it.
    checks = judge_then_recover(fault_pool, candidate("return x", prelude="sys.exit(3)"), "sys_exit")
    assert "SystemExit" in checks["loads"]


def test_hang(fault_pool):
    checks = judge_then_recover(fault_pool, candidate("while True:\n    pass"), "hang")
    assert "no answer within 6s" in checks["time_limit"]


def test_out_of_memory(fault_pool):
    checks = judge_then_recover(fault_pool, candidate("big = torch.empty(8 << 30, dtype=torch.uint8)\nreturn x"), "oom")
    assert "allocate" in checks["runs"] or "memory" in checks["runs"].lower()


def test_fork_bomb(fault_pool):
    body = """
    for _ in range(10000):
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    return x * 2.0 + y
    """
    checks = judge_then_recover(fault_pool, candidate(body), "fork_bomb")
    assert {"runs", "worker_alive", "time_limit"} & set(checks)
    # SIGKILL to a group of hundreds is delivered, not instant: those still dying get a few seconds.
    deadline = time.monotonic() + 15
    while _worker_processes(fault_pool) != fault_pool._workers.pids() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _worker_processes(fault_pool) == fault_pool._workers.pids(), "processes of a killed worker survived"


def test_runaway_compile(fault_pool, tmp_path):
    # 2^40 distinct template instantiations: g++ would run for hours.
    prelude = r'''
    src = os.path.join(os.getcwd(), "runaway.cpp")
    open(src, "w").write("""
    template<int N, long M> struct F { static constexpr long v = F<N-1, 2*M>::v + F<N-1, 2*M+1>::v; };
    template<long M> struct F<0, M> { static constexpr long v = M; };
    long h() { return F<40, 1>::v; }
    """)
    subprocess.run(["g++", "-O2", "-c", src, "-o", src + ".o"])
    '''
    checks = judge_then_recover(fault_pool, candidate("return x", prelude=prelude), "runaway_compile")
    assert "time_limit" in checks


def test_no_network(fault_pool):
    body = """
    s = socket.create_connection(("pypi.org", 443), timeout=3)
    return x * 2.0 + y
    """
    checks = judge_then_recover(fault_pool, candidate(body), "network")
    assert "runs" in checks


def test_no_writes_outside_scratch(fault_pool, tmp_path):
    target = tmp_path / "escaped.txt"
    body = f"open({str(target)!r}, 'w').write('x')\nreturn x * 2.0 + y"
    checks = judge_then_recover(fault_pool, candidate(body), "write_outside")
    assert "outside the worker's scratch directory" in checks["runs"]
    assert not target.exists()


def test_no_secrets_in_environment(fault_pool, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-real")
    monkeypatch.setenv("MY_SERVICE_TOKEN", "not-real")
    # Accepted only if the worker's environment carries neither variable.
    prelude = """
    leaked = [k for k in os.environ if k in ("OPENAI_API_KEY", "MY_SERVICE_TOKEN")]
    if leaked:
        raise RuntimeError("secret visible: " + ",".join(leaked))
    """
    # Twice: the first replacement is the standby, which may have started before the variables.
    for _ in range(2):
        fault_pool._workers.release(fault_pool._workers.acquire(), replace=True)
    verdict = fault_pool.evaluate(PROBLEM, candidate("return x * 2.0 + y", prelude=prelude), "secrets", policy="standard")
    assert verdict.accepted, verdict.reason


def test_scratch_is_writable(fault_pool):
    body = "open('notes.txt', 'w').write('ok')\nreturn x * 2.0 + y"
    verdict = fault_pool.evaluate(PROBLEM, candidate(body), "scratch_write", policy="standard")
    assert verdict.accepted, verdict.reason


def _worker_processes(pool) -> set[int]:
    """Live worker processes of this pool, zombies excluded: those started afresh name the pool's
    scratch directory in their command line (and so do the children of a fork); those forked by
    the pool's zygote, and their children, work in a worker's scratch directory under it."""
    marker = str(pool._workers.root).encode()
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().split(") ")[-1].split()[0]
            cwd = os.fsencode(os.readlink(entry / "cwd"))
        except OSError:
            continue
        ours = (b"akg.harness.worker" in cmdline and marker in cmdline) or cwd.startswith(marker + b"/worker-")
        if ours and state != "Z" and int(entry.name) != os.getpid():
            found.add(int(entry.name))
    return found
