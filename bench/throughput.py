"""How fast akg judges candidates: candidates verified and timed per minute, and the time to the
first verified result, on memory-bound problems (a benchmark, not a test).

    python bench/throughput.py FOLDER --dsl triton --device cuda [--pick 3] [--min-gb 1] [--max-gb 8]
                               [--problems 21,23] [--budget 16] [--runs 2] [--whole-budget] --out throughput.json

Problems come from FOLDER (searched recursively, like ``akg bench``): the ``--problems`` selection,
or else the first ``--pick`` whose inputs weigh between --min-gb and --max-gb and whose forward is
memory-bound (FLOPs per byte below --max-intensity, counted on meta tensors, so nothing is
allocated to choose). Each problem is optimised ``--runs`` times against one fresh store: the
first run measures the baselines, later ones reuse them from the store, as every run after the
first does in practice. Per run: wall time, candidates judged (stored verdicts are not counted),
candidates per minute, seconds to the first accepted generated candidate, and phase times; and the
searching rate, candidates judged per minute from the first judged to the last (start-up and baselines
left out). ``--whole-budget`` turns off the stop near the roofline floor, so that a problem whose first
candidate is already near it is still searched and the rate is of judging, not of deciding to stop.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch


def footprint(path: Path) -> tuple[float, float] | None:
    """(input GB, FLOPs per byte moved) of a problem, from meta tensors; None if it cannot say."""
    from torch.utils.flop_counter import FlopCounterMode
    from akg.problem import load_problem
    try:
        problem = load_problem(path)
        with torch.device("meta"):
            inputs = problem.get_inputs()
            model = problem.build_model(0)
            with FlopCounterMode(display=False) as counter:
                out = model(*inputs)
    except Exception:
        return None
    tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    moved = sum(t.numel() * t.element_size() for t in tensors + [o for o in outs if isinstance(o, torch.Tensor)])
    return sum(t.numel() * t.element_size() for t in tensors) / 1e9, counter.get_total_flops() / max(moved, 1)


def choose(folder: Path, spec: str | None, pick: int, min_gb: float, max_gb: float, max_intensity: float) -> list:
    from akg.bench import discover, select
    entries = select(discover(folder), spec)
    if spec:
        return entries
    chosen = []
    for entry in entries:
        size = footprint(entry.path)
        if size is not None and min_gb <= size[0] <= max_gb and size[1] <= max_intensity:
            chosen.append(entry)
            if len(chosen) == pick:
                break
    return chosen


def measure(path: str, problem_id: str, dsl: str, device: str, store_path: str, budget: int,
            time_limit: float | None, no_compile: bool, whole_budget: bool = False) -> dict:
    """One optimisation in this (fresh) process, timed through its progress events."""
    from akg.harness import HarnessConfig
    from akg.pipeline import optimize_problem, resolve_target
    from akg.problem import load_problem
    from akg.search import SearchOptions
    from akg.store import Store
    events: list[tuple[float, str, object]] = []
    started = time.monotonic()

    def progress(message: str, scored) -> None:
        events.append((time.monotonic() - started, message, scored))

    target = resolve_target(dsl, device)
    options = SearchOptions(budget=budget, time_limit_s=time_limit, started=started,
                            **({"near_floor": 0.0} if whole_budget else {}))
    with Store(store_path) as store:
        report = optimize_problem(load_problem(path), target, None, store, options,
                                  HarnessConfig(measure_compile=not no_compile), progress)
    wall = time.monotonic() - started
    judged = [(t, s) for t, m, s in events if s is not None and not s.reused]
    full = [(t, s) for t, s in judged if _is_full_verification(events, s)]
    first_ok = next((t for t, s in judged if s.verdict.accepted and s.candidate.origin != "reference"), None)
    first_full = next((t for t, s in full if s.verdict.accepted), None)
    phase = lambda needle: next((round(t, 2) for t, m, s in events if s is None and needle in m), None)
    return {"problem": problem_id, "wall_s": round(wall, 2), "candidates_judged": len(judged),
            "candidates_per_minute": round(len(judged) / wall * 60, 2) if wall else None,
            "searching_per_minute": searching_rate([t for t, _ in judged]),
            "first_verified_s": None if first_ok is None else round(first_ok, 2),
            "first_fully_verified_s": None if first_full is None else round(first_full, 2),
            "baselines_started_s": phase("baseline"),
            "first_candidate_s": next((round(t, 2) for t, s in judged), None),
            "fully_verified": len(full), "best": report["best"], "baselines": report["baselines"],
            "phases": report.get("phases"), "milestones": report.get("milestones"), "notes": report["notes"]}


def searching_rate(times: list[float]) -> float | None:
    """Candidates judged per minute between the first judged and the last: the first one's wait
    (start-up, baselines, the first build) is not counted, each later one's is."""
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return round((len(times) - 1) / (times[-1] - times[0]) * 60, 2)


def _is_full_verification(events, scored) -> bool:
    """Whether this event is a full verification (it follows its 'full verification of' line)."""
    for i, (_, message, s) in enumerate(events):
        if s is scored:
            return i > 0 and events[i - 1][1] == f"full verification of {scored.candidate.id}"
    return False


def _median_high(values: list[float]) -> float | None:
    return statistics.median_high(values) if values else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--dsl", default="triton")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--problems", default=None, help="selection as in akg bench --problems")
    parser.add_argument("--pick", type=int, default=3)
    parser.add_argument("--min-gb", type=float, default=1.0)
    parser.add_argument("--max-gb", type=float, default=8.0)
    parser.add_argument("--max-intensity", type=float, default=1.0, help="most FLOPs per byte of a memory-bound problem")
    parser.add_argument("--budget", type=int, default=16)
    parser.add_argument("--time-limit", type=float, default=None)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--whole-budget", action="store_true",
                        help="search the whole budget: no stop near the roofline floor")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing
    from akg.pipeline import atomic_write, resolve_target

    entries = choose(args.folder, args.problems, args.pick, args.min_gb, args.max_gb, args.max_intensity)
    if not entries:
        print(f"no problem in {args.folder} fits the selection", file=sys.stderr)
        return 2
    hardware = resolve_target(args.dsl, args.device).hardware.name
    results = {"dsl": args.dsl, "device": args.device, "hardware": hardware, "torch": torch.__version__,
               "budget": args.budget, "time_limit_s": args.time_limit, "whole_budget": args.whole_budget,
               "runs": []}
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="akg-throughput-") as scratch:
        store = str(Path(scratch) / "akg.db")   # one store: the second run of a problem reuses its baselines
        for entry in entries:
            size = footprint(entry.path)
            for run in range(args.runs):
                print(f"== {entry.id} run {run + 1}", file=sys.stderr, flush=True)
                # Each run in a fresh process, as each `akg optimize` is: nothing stays on the device.
                with ProcessPoolExecutor(1, mp_context=spawn) as child:
                    try:
                        row = child.submit(measure, str(entry.path), entry.id, args.dsl, args.device, store,
                                           args.budget, args.time_limit, args.no_compile,
                                           args.whole_budget).result()
                    except Exception as e:  # one problem failing must not lose the others' numbers
                        row = {"problem": entry.id, "error": str(e).splitlines()[0] if str(e) else type(e).__name__}
                row.update(run=run + 1, input_gb=size and round(size[0], 3))
                results["runs"].append(row)
                print(json.dumps({k: row.get(k) for k in ("problem", "run", "wall_s", "candidates_judged",
                                                          "candidates_per_minute", "searching_per_minute",
                                                          "first_verified_s",
                                                          "first_fully_verified_s", "baselines_started_s",
                                                          "first_candidate_s", "phases", "error")}),
                      file=sys.stderr, flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(args.out, json.dumps(results, indent=2, default=str) + "\n")
    ok = [r for r in results["runs"] if "error" not in r]
    total_wall = sum(r["wall_s"] for r in ok)
    results["summary"] = {
        "candidates_per_minute": round(sum(r["candidates_judged"] for r in ok) / total_wall * 60, 2) if total_wall else None,
        "searching_per_minute_median": _median_high([r["searching_per_minute"] for r in ok
                                                     if r.get("searching_per_minute") is not None]),
        "first_verified_s_max": max((r["first_verified_s"] for r in ok if r["first_verified_s"] is not None), default=None),
        "first_fully_verified_s_max": max((r["first_fully_verified_s"] for r in ok
                                           if r["first_fully_verified_s"] is not None), default=None)}
    atomic_write(args.out, json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps(results["summary"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
