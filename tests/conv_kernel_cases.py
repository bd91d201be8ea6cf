"""Small convolution problems for the conv_epilogue family, and a runner that renders each one's
``fuse-all-conv`` plan in the Triton DSL and runs it in Triton's interpreter against the model.

Run as a script in a fresh process (TRITON_INTERPRET=1 must be set before triton is imported):
stdin is a JSON list of case names, stdout one JSON object {case: max relative error or failure}.
"""
from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import textwrap
import warnings
from pathlib import Path

PLAN = "fuse-all-conv"


def _problem(module: str, inputs: str) -> str:
    return textwrap.dedent(module) + f"\ndef get_inputs():\n    return [{inputs}]\n\ndef get_init_inputs():\n    return []\n"


CASES = {
    # conv1d, stride 2, padding, odd length, bias + hardswish
    "conv1d-stride2-hardswish": _problem('''
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv1d(5, 6, 3, stride=2, padding=1)

            def forward(self, x):
                return torch.nn.functional.hardswish(self.conv(x))
        ''', "torch.randn(2, 5, 19)"),
    # conv2d, stride 2, padding, dilation, odd sizes; bias, relu, a per-channel add after
    "conv2d-stride2-dilation-relu-bias": _problem('''
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 10, 3, stride=2, padding=2, dilation=2)
                self.bias = nn.Parameter(torch.randn(10, 1, 1))

            def forward(self, x):
                return torch.relu(self.conv(x)) + self.bias
        ''', "torch.randn(2, 3, 11, 9)"),
    # conv2d with a rectangular kernel, padding="same", no bias; a per-channel scale and clamp
    "conv2d-same-nobias-scale-clamp": _problem('''
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(4, 7, (3, 2), padding="same", bias=False)
                self.scale = nn.Parameter(torch.randn(7, 1, 1))

            def forward(self, x):
                return torch.clamp(self.conv(x) * self.scale, min=-1.0, max=1.0)
        ''', "torch.randn(1, 4, 7, 6)"),
    # conv3d, padding, stride (2, 1, 1); hardswish then scale and clamp
    "conv3d-pad-hardswish-clamp": _problem('''
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv3d(3, 5, 3, stride=(2, 1, 1), padding=1)

            def forward(self, x):
                x = torch.nn.functional.hardswish(self.conv(x))
                return torch.clamp(x * 1.5, min=-0.5, max=1.0)
        ''', "torch.randn(2, 3, 5, 6, 7)"),
    # the input read through a transposed view (no copy): the kernel walks its strides
    "conv2d-strided-input": _problem('''
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3)

            def forward(self, x):
                return torch.sigmoid(self.conv(x.transpose(2, 3)))
        ''', "torch.randn(2, 3, 9, 8)"),
    # K = 6 * 9 = 54 > 32: several K steps with a ragged last one; M = 2 * 64 rows over several tiles
    "conv2d-several-tiles": _problem('''
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(6, 40, 3, padding=1)

            def forward(self, x):
                return torch.relu(self.conv(x))
        ''', "torch.randn(2, 6, 8, 8)"),
    # the convolution's own output is returned as well as its epilogue: one kernel, two stores
    "conv2d-two-outputs": _problem('''
        class Model(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 4, 3, stride=(1, 2))

            def forward(self, x):
                y = self.conv(x)
                return y, torch.relu(y) * 2.0
        ''', "torch.randn(2, 3, 7, 9)"),
}
# Cases run with small tiles too, so several programs and K steps meet ragged edges.
SMALL_TILES = {"BM": 16, "BN": 16, "BK": 16, "GROUP_M": 2, "num_warps": 4, "num_stages": 1, "precision": "ieee"}
TILED_CASES = ("conv2d-several-tiles", "conv3d-pad-hardswish-clamp")


def write_problem(folder: Path, name: str):
    from akg.problem import load_problem
    path = folder / f"{name.replace('-', '_')}.py"
    path.write_text("import torch\nimport torch.nn as nn\n\n" + CASES[name])
    return load_problem(path)


def all_plans(problem) -> list:
    """Every plan of ``problem``'s graph after the installed graph passes."""
    from akg import plugins
    from akg.agents import analyzer
    from akg.targets import PassContext, run_graph_passes, run_plan_passes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = run_graph_passes(analyzer.trace(problem), plugins.passes(), PassContext())
    return run_plan_passes(graph, plugins.passes(), PassContext())


def conv_plan(problem):
    """The fuse-all-conv plan of ``problem``."""
    return next(p for p in all_plans(problem) if p.name == PLAN)


def candidate_source(problem, knobs: dict | None = None) -> str:
    from akg import plugins
    from akg.agents import coder, designer
    from akg.ir import Schedule
    dsl = plugins.get_dsl("triton")
    plan = conv_plan(problem)
    options = designer.plan_options(plan, dsl, plugins.get_backend("cpu").detect())
    plan = options.plan
    if knobs is not None:
        plan = plan.with_schedules(tuple(Schedule().with_(**knobs) if g.family == "conv_epilogue" else g.schedule
                                         for g in plan.groups))
    return coder.make_candidate(plan, dsl, "cpu", problem.source, problem.name).source


def _models(source: str, folder: Path):
    """The candidate module, its Model and ModelNew built from the same seed, and the input seed set."""
    import torch
    path = folder / "candidate.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"cand_{abs(hash(source))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    ref = module.Model(*module.get_init_inputs())
    torch.manual_seed(0)
    new = module.ModelNew(*module.get_init_inputs())
    torch.manual_seed(1)
    return module, ref, new


def max_error(source: str, folder: Path) -> float:
    """Largest |ModelNew - Model| over the outputs, relative to the reference's largest magnitude."""
    import torch
    module, ref, new = _models(source, folder)
    inputs = module.get_inputs()
    with torch.no_grad():
        want, got = ref(*inputs), new(*inputs)
    want = want if isinstance(want, (tuple, list)) else (want,)
    got = got if isinstance(got, (tuple, list)) else (got,)
    worst = 0.0
    for w, g in zip(want, got):
        assert w.shape == g.shape and w.dtype == g.dtype, (w.shape, g.shape, w.dtype, g.dtype)
        worst = max(worst, float((w - g).abs().max() / (w.abs().max() + 1e-6)))
    return worst


def tf32_rounded(t):
    """``t`` rounded to TF32 (10 mantissa bits) to nearest, ties away from zero, as cuDNN rounds."""
    import torch
    bits = t.detach().float().contiguous().view(torch.int32)
    return ((bits + 0x1000) & -0x2000).view(torch.float32)


def tf32_error(source: str, folder: Path) -> float:
    """Largest |ModelNew - Model| relative to the reference's largest magnitude, where the reference
    convolves the TF32-rounded input and weights in float64: a kernel that rounds its dot operands
    as cuDNN does matches it to fp32 accumulation error, one that truncates or keeps fp32 does not."""
    import torch
    module, ref, new = _models(source, folder)
    (x,) = module.get_inputs()
    with torch.no_grad():
        got = new(x)
        for conv in (m for m in ref.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)):
            conv.weight.copy_(tf32_rounded(conv.weight))
        want = ref.double()(tf32_rounded(x).double())
    return float((want - got.double()).abs().max() / want.abs().max())


def run(requests: list[str]) -> dict[str, float | str]:
    results: dict[str, float | str] = {}
    for request in requests:
        name, _, tiles = request.partition("@")
        try:
            with tempfile.TemporaryDirectory(prefix="akg-conv-case-") as folder:
                problem = write_problem(Path(folder), name)
                if tiles == "tf32":   # rounded operands, against a reference convolving rounded ones
                    source = candidate_source(problem, dict(SMALL_TILES, precision="tf32"))
                    results[request] = tf32_error(source, Path(folder))
                    continue
                source = candidate_source(problem, SMALL_TILES if tiles else None)
                results[request] = max_error(source, Path(folder))
        except Exception as exc:   # reported per case so one failure does not hide the others
            results[request] = f"{type(exc).__name__}: {exc}"
    return results


if __name__ == "__main__":
    print(json.dumps(run(json.load(sys.stdin))))
