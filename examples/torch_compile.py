"""torch.compile(model, backend="akg") on a small model: eager, Inductor and akg timed side by side.

    python examples/torch_compile.py [--device cpu|cuda] [--budget N] [--time-limit S] [--store PATH] [--rows N]

The first run searches each subgraph akg takes (within --budget) and keeps the verified kernels in
the store; later runs find them there and compile in seconds.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time

import torch
import torch.nn as nn

import akg
import akg.dynamo


class Block(nn.Module):
    """A matmul (Inductor's on the CPU) and a pointwise tail akg fuses into one kernel."""

    def __init__(self, dim: int):
        super().__init__()
        self.lin = nn.Linear(dim, dim)
        self.gate = nn.Parameter(torch.rand(dim))

    def forward(self, x):
        y = self.lin(x)
        y = y * torch.sigmoid(y * self.gate)
        return torch.tanh(y * 0.5 + x) * 2.0 - 1.0


def median_ms(fn, x, device: str, trials: int = 30) -> float:
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    with torch.no_grad():
        for _ in range(3):
            fn(x)
        times = []
        for _ in range(trials):
            sync()
            start = time.perf_counter()
            fn(x)
            sync()
            times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--budget", type=int, default=4)
    p.add_argument("--time-limit", type=float, default=None, help="seconds of search per subgraph")
    p.add_argument("--store", default=".akg/akg.db")
    p.add_argument("--rows", type=int, default=8192)
    p.add_argument("--dim", type=int, default=256)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("torch").setLevel(logging.WARNING)
    akg.configure(budget=args.budget, store=args.store, time_limit=args.time_limit)

    torch.manual_seed(0)
    model = Block(args.dim).to(args.device).eval()
    x = torch.randn(args.rows, args.dim, device=args.device)
    with torch.no_grad():
        start = time.perf_counter()
        compiled = torch.compile(model, backend="akg")
        out = compiled(x)
        compile_s = time.perf_counter() - start
        inductor = torch.compile(model)
        inductor(x)
        tol = 2e-3 if args.device != "cpu" else None   # GPU matmuls may round differently (TF32)
        torch.testing.assert_close(out, model(x), rtol=tol, atol=tol)
    print(f"akg compile {compile_s:.1f} s · {akg.dynamo.stats()}")
    print(f"eager {median_ms(model, x, args.device):.3f} ms · inductor {median_ms(inductor, x, args.device):.3f} ms · "
          f"akg {median_ms(compiled, x, args.device):.3f} ms   ({args.rows}x{args.dim}, {args.device})")


if __name__ == "__main__":
    main()
