"""GPU micro-benchmark: the Triton conv_epilogue schedules (a convolution as an implicit GEMM with
its bias and ReLU fused) the search would measure, per convolution shape, against torch eager
(cuDNN, then the epilogue) and torch.compile, with each schedule's error against a float64
convolution next to cuDNN's own. Writes one JSON file.

    python bench/conv_tiles.py --out conv.json [--shapes "128x64x128x128:128x3,16x3x16x32x32:16x3"]

A shape is NxCxH[xW[xD]]:C_outxK[:sS][:pP][:dD] (S, P, D: stride, padding, dilation) [:fp16].
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

import torch
import triton.testing

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "gpu"))
from triton_specs import load_group  # noqa: E402

from akg import ir, plugins  # noqa: E402
from akg.agents import designer  # noqa: E402
from akg.agents.analyzer import plans_for  # noqa: E402
from akg.problem import load_problem  # noqa: E402

# KernelBench level-2 convolutions: 3x3 64->128 on 128x128 (Conv2d_ReLU_BiasAdd, ReLU_HardSwish),
# 3x3x3 3->16 (the Conv3d problems), a 1-d conv with stride 2, and the 2-d one in fp16.
SHAPES = "128x64x128x128:128x3,128x3x16x32x32:16x3,32x64x4096:128x5:s2:p2,128x64x128x128:128x3:fp16"
MODULE = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv{d}d({cin}, {cout}, {k}, stride={s}, padding={p}, dilation={dil}){half}

    def forward(self, x):
        return torch.relu(self.conv(x))

def get_inputs():
    return [torch.rand({shape}, dtype=torch.{dtype})]

def get_init_inputs():
    return []
'''


def parse(text: str) -> dict:
    parts = text.split(":")
    dims = [int(v) for v in parts[0].split("x")]
    cout, k = (int(v) for v in parts[1].split("x"))
    opts = {p[0]: int(p[1:]) for p in parts[2:] if p[0] in "spd" and p[1:].isdigit()}
    dtype = "float16" if "fp16" in parts[2:] else "float32"
    return dict(d=len(dims) - 2, cin=dims[1], cout=cout, k=k, s=opts.get("s", 1), p=opts.get("p", 0),
                dil=opts.get("d", 1), half=".half()" if dtype == "float16" else "", shape=tuple(dims), dtype=dtype)


def bench_ms(fn) -> float:
    return float(triton.testing.do_bench(fn, warmup=10, rep=100, return_mode="median"))


def conv_group(problem) -> ir.FusedGroup:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, plans = plans_for(problem)
    plan = next(p for p in plans if p.name == "fuse-all-conv")
    (group,) = plan.groups
    return group


def measure(text: str, hardware, with_compile: bool) -> dict:
    spec = parse(text)
    folder = Path(tempfile.mkdtemp(prefix="akg-conv-bench-"))
    (folder / "problem.py").write_text(textwrap.dedent(MODULE.format(**spec)))
    problem = load_problem(folder / "problem.py")
    group = conv_group(problem)
    torch.manual_seed(0)
    model = problem.build_model(0).cuda().eval()
    x = torch.rand(spec["shape"], device="cuda", dtype=getattr(torch, spec["dtype"]))
    values = {"x": x, "p:conv.weight": model.conv.weight.detach(), "p:conv.bias": model.conv.bias.detach()}
    args = [values[v] for v in group.read_values()]
    with torch.no_grad():
        conv = getattr(torch.nn.functional, f"conv{spec['d']}d")
        w64, b64 = model.conv.weight.double(), model.conv.bias.double()
        want = torch.relu(conv(x.double(), w64, b64, spec["s"], spec["p"], spec["dil"]))
        eager = model(x)
    ref_err = float((eager.double() - want).norm() / want.norm())
    m, n, k = group.kernel.gemm
    flops = 2.0 * m * n * k
    with torch.no_grad():
        eager_ms = bench_ms(lambda: model(x))
    row = {"shape": text, "gemm": [m, n, k], "eager_ms": eager_ms, "eager_tflops": flops / eager_ms / 1e9,
           "cudnn_rel_err": ref_err, "schedules": []}
    if with_compile:
        torch._dynamo.reset()
        compiled = torch.compile(model)
        with torch.no_grad():
            compiled(x)
            row["compile_ms"] = bench_ms(lambda: compiled(x))
    dsl = plugins.get_dsl("triton")
    for i, schedule in enumerate(dsl.schedules(group, hardware)):
        entry = {"rank": i, "schedule": str(schedule)}
        try:
            launcher = load_group(dsl.render([(0, ir.FusedGroup(group.nodes, group.family, group.kernel, schedule))], "cuda"))
            got = launcher(*args)[0]
            entry["rel_err"] = float((got.double() - want).norm() / want.norm())
            entry["ms"] = bench_ms(lambda: launcher(*args))
            entry["tflops"] = flops / entry["ms"] / 1e9
            entry["vs_eager"] = eager_ms / entry["ms"]
            if "compile_ms" in row:
                entry["vs_compile"] = row["compile_ms"] / entry["ms"]
        except Exception as exc:   # a schedule that does not compile is a result, not the end of the run
            entry["failure"] = f"{type(exc).__name__}: {str(exc)[:300]}"
        row["schedules"].append(entry)
        print(f"  {text} #{i} {schedule}: " + (f"{entry['ms']:.3f} ms {entry['tflops']:.0f} TFLOP/s "
              f"{entry['vs_eager']:.2f}x eager err {entry['rel_err']:.1e} (cuDNN {ref_err:.1e})"
              if "ms" in entry else entry["failure"]), flush=True)
    timed = [e for e in row["schedules"] if "ms" in e]
    best = min(timed, key=lambda e: e["ms"]) if timed else None
    row["best"], row["seeded_is_best"] = best, bool(best and best["rank"] == 0)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default=SHAPES, help="comma-separated shapes (see the module doc)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile")
    args = ap.parse_args()
    hardware = plugins.get_backend("cuda").detect()
    rows = []
    for text in args.shapes.split(","):
        rows.append(measure(text, hardware, args.compile))
        r, best = rows[-1], rows[-1]["best"]
        print(f"{text}: eager {r['eager_ms']:.3f} ms ({r['eager_tflops']:.0f} TFLOP/s)"
              + (f", compile {r['compile_ms']:.3f} ms" if "compile_ms" in r else "")
              + (f"; best #{best['rank']} {best['schedule']} {best['ms']:.3f} ms = {best['vs_eager']:.2f}x eager"
                 if best else "; no schedule ran"), flush=True)
        Path(args.out).write_text(json.dumps({"device": torch.cuda.get_device_name(), "torch": torch.__version__,
                                              "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
