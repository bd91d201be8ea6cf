"""GPU micro-benchmark: akg's Triton templates (every schedule the search would measure) against
torch eager and torch.compile, at GPU sizes. Writes one JSON file.

    python bench/triton_kernels.py --out results.json [--cases softmax_lse,layer_norm]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import triton.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "gpu"))
from triton_specs import CASES, GPU_SIZES, load_group, max_error  # noqa: E402

from akg.dsls.triton.dsl import TritonDSL  # noqa: E402
from akg.plugins import get_backend  # noqa: E402

REPEAT_MS = 200


def bench_ms(fn) -> float:
    # do_bench flushes L2 between trials, warms up and returns the median of event-timed trials.
    return float(triton.testing.do_bench(fn, warmup=25, rep=REPEAT_MS, return_mode="median"))


def copy_bandwidth_gbs() -> float:
    """Measured device-to-device copy rate (bytes read + written): the practical memory roof."""
    src = torch.empty(1 << 28, dtype=torch.float32, device="cuda")
    dst = torch.empty_like(src)
    ms = bench_ms(lambda: dst.copy_(src))
    return 2 * src.numel() * 4 / ms / 1e6


def measure_case(case, dsl, hardware) -> dict:
    sizes = GPU_SIZES[case.name]
    torch.manual_seed(0)
    inputs = case.inputs(sizes, "cuda")
    want = case.reference(inputs)
    rows = []
    for schedule in dsl.schedules(case.group(sizes), hardware):
        row = {"schedule": str(schedule)}
        try:
            launcher = load_group(dsl.render([(0, case.group(sizes, schedule))], "cuda"))
            row["error"] = max_error(list(launcher(*inputs)), want)
            row["ms"] = bench_ms(lambda: launcher(*inputs))
        except Exception as exc:  # a schedule that fails to compile is a result, not the end of the run
            row["failure"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        rows.append(row)
    eager_ms = bench_ms(lambda: case.reference(inputs))
    torch._dynamo.reset()   # one compiled function per case, not recompilations of one
    compiled = torch.compile(lambda *t: case.reference(list(t)))
    compiled(*inputs)
    compile_ms = bench_ms(lambda: compiled(*inputs))
    ok = [r for r in rows if "ms" in r and r["error"] < (2e-3 if case.family == "matmul_epilogue" else 1e-4)]
    best = min(ok, key=lambda r: r["ms"]) if ok else None
    result = {"case": case.name, "family": case.family, "sizes": sizes, "eager_ms": eager_ms,
              "compile_ms": compile_ms, "schedules": rows, "best": best}
    if best:
        result["gbs"] = case.bytes_moved(sizes) / best["ms"] / 1e6
        result["tflops"] = case.flops(sizes) / best["ms"] / 1e9
        result["vs_eager"] = eager_ms / best["ms"]
        result["vs_compile"] = compile_ms / best["ms"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--cases", default="", help="comma-separated case names (default: all)")
    args = parser.parse_args()
    wanted = set(filter(None, args.cases.split(",")))
    hardware = get_backend("cuda").detect()
    dsl = TritonDSL()
    report = {"device": torch.cuda.get_device_name(), "hardware": hardware.name,
              "torch": torch.__version__, "triton": triton.__version__,
              "copy_gbs": copy_bandwidth_gbs(), "cases": []}
    for case in CASES:
        if wanted and case.name not in wanted:
            continue
        started = time.time()
        result = measure_case(case, dsl, hardware)
        result["bench_s"] = time.time() - started
        report["cases"].append(result)
        Path(args.out).write_text(json.dumps(report, indent=1))
        print_row(result, report["copy_gbs"], flush=True)


def print_row(r: dict, copy_gbs: float, flush: bool = False) -> None:
    best = r.get("best")
    if not best:
        print(f"{r['case']:18s} no verified schedule", flush=flush)
        return
    roof = f"{r['gbs']:7.0f} GB/s ({r['gbs'] / copy_gbs:4.0%} of copy)" if not r["tflops"] else f"{r['tflops']:6.1f} TFLOP/s"
    print(f"{r['case']:18s} akg {best['ms']:8.3f} ms  eager {r['eager_ms']:8.3f}  compile {r['compile_ms']:8.3f}  "
          f"x{r['vs_eager']:.2f} eager x{r['vs_compile']:.2f} compile  {roof}  [{best['schedule']}]", flush=flush)


if __name__ == "__main__":
    main()
