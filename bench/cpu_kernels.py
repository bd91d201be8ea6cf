"""CPU micro-benchmark: the fully fused plan of each problem, rendered by the cpp DSL, against torch
eager and torch.compile in one process, one thread each, timed by the thread's CPU time.

CPU time of one thread barely moves when other processes share the cores, so this gives stable
kernel-against-kernel ratios on a loaded machine, where `akg bench` (wall-clock, all threads)
cannot. It checks only the default inputs' result (max abs error printed); `akg verify` and
`akg bench` are the correctness verdict.

    OMP_NUM_THREADS=1 python bench/cpu_kernels.py examples/problems [--out results.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

import torch

from akg import plugins
from akg.agents import analyzer, coder
from akg.problem import load_problem
from akg.targets import RenderError


def _first(x):
    return x if isinstance(x, torch.Tensor) else x[0]


def _cpu_ms(fn, inputs, reps: int = 20, rounds: int = 5) -> float:
    """Lower quartile of ``reps`` calls, best of ``rounds`` rounds, in thread CPU milliseconds."""
    best = float("inf")
    for _ in range(rounds):
        times = []
        for _ in range(reps):
            t0 = time.thread_time()
            fn(*inputs)
            times.append(time.thread_time() - t0)
        best = min(best, sorted(times)[len(times) // 4])
    return best * 1e3


def measure(path: Path) -> dict:
    problem = load_problem(path)
    _, plans = analyzer.plans_for(problem)
    source, plan = None, None
    for plan in sorted(plans, key=lambda p: len(p.groups)):   # the most fused plan the DSL renders
        try:
            source = coder.assemble(plan, plugins.get_dsl("cpp"), "cpu", path.read_text(), path.stem)
            break
        except RenderError:
            continue
    if source is None:
        raise RenderError("the cpp DSL renders none of the plans")
    module = types.ModuleType(path.stem)
    exec(compile(source, str(path), "exec"), module.__dict__)
    torch.manual_seed(0)
    init, inputs = module.get_init_inputs(), module.get_inputs()
    reference = module.Model(*init).eval()
    candidate = module.ModelNew(*init).eval()
    candidate.load_state_dict(reference.state_dict())
    compiled = torch.compile(module.Model(*init).eval())
    with torch.no_grad():
        expected = _first(reference(*inputs))
        error = (_first(candidate(*inputs)).double() - expected.double()).abs().max().item()
        compiled(*inputs)
        ms = {name: _cpu_ms(fn, inputs) for name, fn in
              (("eager", reference), ("compile", compiled), ("akg", candidate))}
    library = [g.kernel.op for g in plan.groups if g.family == "library"]
    return {"problem": path.stem, "plan": plan.name, "library_calls": library, "max_abs_error": error,
            **{f"{k}_ms": v for k, v in ms.items()}, "akg_vs_compile": ms["compile"] / ms["akg"],
            "akg_vs_eager": ms["eager"] / ms["akg"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("suite", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print("set OMP_NUM_THREADS=1: the timing counts one thread's CPU time", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    load_before = os.getloadavg()
    rows = []
    for path in sorted(args.suite.glob("[0-9]*.py")):
        try:
            row = measure(path)
        except Exception as error:   # one problem's failure is reported, the rest still run
            row = {"problem": path.stem, "error": f"{type(error).__name__}: {str(error)[:200]}"}
        rows.append(row)
        if "error" in row:
            print(f"{row['problem']:28s} error: {row['error']}", flush=True)
        else:
            print(f"{row['problem']:28s} eager {row['eager_ms']:7.3f} ms  compile {row['compile_ms']:7.3f} ms  "
                  f"akg {row['akg_ms']:7.3f} ms  {row['akg_vs_compile']:5.2f}x compile  "
                  f"err {row['max_abs_error']:.1e}  {row['plan']}", flush=True)
    if args.out:
        # The load average (1, 5, 15 min) before and after: thread CPU time barely moves with it,
        # but a reader judging the numbers should know what else ran on the cores.
        meta = {"torch": torch.__version__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                "load_average_before": load_before, "load_average_after": os.getloadavg()}
        args.out.write_text(json.dumps({**meta, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
