"""A partition of the ATen graph as an akg problem: canonical source, example input specs, key.

The problem file is the partition's code with canonical names (``in0``.., ``v0``..), so the same
subgraph met again -- in this model, another model or another process -- has the same text, and the
store knows it by the text's digest. The text names the shapes and dtypes of the inputs (in
``get_inputs``) and the torch, akg and DSL versions (in its first line), so a change of any of them
is a new problem, never a stale hit.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import re
from dataclasses import dataclass

import torch
import torch.fx

import akg

_ALLOWED_GLOBALS = {"torch", "inf", "nan", "device", "NoneType"}

_TEMPLATE = '''"""A subgraph akg took from a torch.compile'd program ({versions})."""
import torch
import torch.nn as nn
from torch import device

inf, nan = float("inf"), float("nan")


class Model(nn.Module):
{forward}

def get_inputs():
    return [
{inputs}
    ]


def get_init_inputs():
    return []
'''


class SubgraphError(ValueError):
    """The partition cannot be written as a problem (akg leaves it to Inductor)."""


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    @classmethod
    def of(cls, t: torch.Tensor) -> "TensorSpec":
        if any(not isinstance(s, int) for s in (*t.shape, *t.stride())):
            raise SubgraphError("dynamic shapes")
        return cls(tuple(t.shape), tuple(t.stride()), t.dtype, t.device)


@dataclass(frozen=True)
class Subgraph:
    source: str                      # the problem file's text
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]  # as the surrounding graph expects them (strides included)

    @property
    def digest(self) -> str:
        # Problem.digest of the problem file: the store knows problems by it.
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]


def versions(dsl_name: str) -> str:
    try:   # a DSL shipped as a package of its own name carries a version; built-in ones follow akg's
        dsl_version = importlib.metadata.version(dsl_name)
    except importlib.metadata.PackageNotFoundError:
        dsl_version = akg.__version__
    return f"torch {torch.__version__}, akg {akg.__version__}, {dsl_name} {dsl_version}"


def canonical_graph(sub: torch.fx.GraphModule) -> torch.fx.Graph:
    """``sub``'s graph with names given by position, its result always a tuple."""
    graph, env = torch.fx.Graph(), {}
    placeholders = calls = 0
    for node in sub.graph.nodes:
        if node.op == "placeholder":
            env[node] = graph.placeholder(f"in{placeholders}")
            placeholders += 1
        elif node.op == "call_function":
            args = torch.fx.map_arg(node.args, env.__getitem__)
            kwargs = torch.fx.map_arg(node.kwargs, env.__getitem__)
            env[node] = graph.create_node("call_function", node.target, args, kwargs, name=f"v{calls}")
            calls += 1
        elif node.op == "output":
            result = torch.fx.map_arg(node.args[0], env.__getitem__)
            graph.output(tuple(result) if isinstance(result, (tuple, list)) else (result,))
        else:
            raise SubgraphError(f"a {node.op} node inside the partition")
    return graph


def _input_line(spec: TensorSpec) -> str:
    shape = repr(spec.shape)
    if spec.dtype.is_floating_point:
        return f"        torch.randn({shape}, dtype={spec.dtype}),"
    if spec.dtype == torch.bool:
        return f"        torch.rand({shape}) < 0.5,"
    # Integer inputs are indices or counts whose valid range only the real values know.
    raise SubgraphError(f"an input of dtype {spec.dtype}")


def subgraph_problem(sub: torch.fx.GraphModule, dsl_name: str) -> Subgraph:
    """The problem for a fused partition (a GraphModule whose nodes carry ``val`` metadata)."""
    ins = [TensorSpec.of(n.meta["val"]) for n in sub.graph.nodes if n.op == "placeholder"]
    out_node = next(n for n in sub.graph.nodes if n.op == "output")
    results = out_node.args[0] if isinstance(out_node.args[0], (tuple, list)) else (out_node.args[0],)
    if not all(isinstance(r, torch.fx.Node) and isinstance(r.meta.get("val"), torch.Tensor) for r in results):
        raise SubgraphError("an output that is not a tensor")
    outs = [TensorSpec.of(r.meta["val"]) for r in results]
    if len({s.device for s in ins + outs}) > 1:
        raise SubgraphError("tensors on more than one device")
    code = canonical_graph(sub).python_code("self")
    # FX lists its builtins whether the code uses them or not; only the used ones matter.
    unknown = {g for g in code.globals if g not in _ALLOWED_GLOBALS and re.search(rf"\b{re.escape(g)}\b", code.src)}
    if unknown:
        raise SubgraphError(f"code needing {', '.join(sorted(unknown))}")
    forward = "\n".join(("    " + line) if line.strip() else "" for line in code.src.strip("\n").splitlines())
    source = _TEMPLATE.format(versions=versions(dsl_name), forward=forward,
                              inputs="\n".join(_input_line(s) for s in ins))
    return Subgraph(source, tuple(ins), tuple(outs))
