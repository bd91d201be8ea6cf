"""GPU micro-benchmark: the Triton matmul-epilogue schedules the search would measure for a linear
layer + bias + ReLU (fp32), per shape, against torch eager (cuBLAS, then the epilogue as separate
kernels) and optionally torch.compile, with each schedule's error against a float64 reference. Shows whether
the seeded (first) schedule is the best of the list and how the split-TF32 ("tf32x3") and IEEE
products compare with cuBLAS. Writes one JSON file.

    python bench/gemm_tiles.py --out gemm.json [--shapes 1024x8192x8192,128x32768x32768] [--tf32]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import triton.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "gpu"))
from triton_specs import CASES, load_group  # noqa: E402

from akg.dsls.triton.dsl import TritonDSL  # noqa: E402
from akg.harness.config import DEFAULT_TOLERANCES  # noqa: E402
from akg.plugins import get_backend  # noqa: E402

# (M, N, K): batches through square and wide linear layers, a short batch through a very wide one,
# and a long K over few output tiles (split-K).
SHAPES = "1024x8192x8192,128x32768x32768,16384x4096x4096,32768x4096x1024,256x256x524288"
CASE = next(c for c in CASES if c.name == "linear_bias_relu")


def bench_ms(fn) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=100, return_mode="median"))


def measure_shape(size: tuple[int, int, int], dsl: TritonDSL, hardware, with_compile: bool) -> dict:
    m, n, k = size
    torch.manual_seed(0)
    inputs = CASE.inputs(size, "cuda")
    x, w, b = (t.double() for t in inputs)
    want = torch.relu(x @ w.T + b)
    del x, w, b
    flops = 2.0 * m * n * k
    eager_ms = bench_ms(lambda: CASE.reference(inputs))
    row = {"shape": list(size), "eager_ms": eager_ms, "eager_tflops": flops / eager_ms / 1e9, "schedules": []}
    if with_compile:
        torch._dynamo.reset()
        compiled = torch.compile(lambda *t: CASE.reference(list(t)))
        compiled(*inputs)
        row["compile_ms"] = bench_ms(lambda: compiled(*inputs))
    for i, schedule in enumerate(dsl.schedules(CASE.group(size), hardware)):
        entry = {"rank": i, "schedule": str(schedule)}
        try:
            launcher = load_group(dsl.render([(0, CASE.group(size, schedule))], "cuda"))
            got = launcher(*inputs)[0]
            entry["rel_norm_error"] = float((got.double() - want).norm() / want.norm())
            entry["fp32_ok"] = entry["rel_norm_error"] <= DEFAULT_TOLERANCES["float32"].rel_norm
            entry["ms"] = bench_ms(lambda: launcher(*inputs))
            entry["tflops"] = flops / entry["ms"] / 1e9
            entry["vs_eager"] = eager_ms / entry["ms"]
        except Exception as exc:   # a schedule that does not compile is a result, not the end of the run
            entry["failure"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        row["schedules"].append(entry)
        print(f"  {m}x{n}x{k} #{i} {schedule}: " + (f"{entry['ms']:.3f} ms {entry['tflops']:.0f} TFLOP/s "
              f"{entry['vs_eager']:.2f}x eager err {entry['rel_norm_error']:.1e}" if "ms" in entry else entry["failure"]),
              flush=True)
    fine = [e for e in row["schedules"] if e.get("fp32_ok") or (dsl.allow_tf32 and "ms" in e)]
    best = min(fine, key=lambda e: e["ms"]) if fine else None
    row["best"], row["seeded_is_best"] = best, bool(best and best["rank"] == 0)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default=SHAPES, help="comma-separated MxNxK")
    ap.add_argument("--tf32", action="store_true", help="list schedules as when torch allows TF32 matmuls")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (Inductor: cuBLAS + a fused epilogue)")
    args = ap.parse_args()
    hardware = get_backend("cuda").detect()
    dsl = TritonDSL(allow_tf32=True if args.tf32 else None)
    rows = []
    for text in args.shapes.split(","):
        size = tuple(int(v) for v in text.lower().split("x"))
        rows.append(measure_shape(size, dsl, hardware, args.compile))
        r = rows[-1]
        best = r["best"]
        print(f"{text}: eager {r['eager_ms']:.3f} ms ({r['eager_tflops']:.0f} TFLOP/s)"
              + (f", compile {r['compile_ms']:.3f} ms" if "compile_ms" in r else "")
              + (f"; best #{best['rank']} {best['schedule']} {best['ms']:.3f} ms = {best['vs_eager']:.2f}x eager"
                 if best else "; no schedule within the fp32 tolerance"), flush=True)
        Path(args.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                              "allow_tf32": dsl.allow_tf32, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
