"""``torch.compile(model, backend="akg")``: akg's verified kernels where akg has them, Inductor elsewhere.

    dynamo graph --make_fx--> ATen graph --partition (akg's frontend decides)--> subgraphs
    each subgraph: store hit or search (akg.configure / AKG_* env) -> verified kernel or nothing
    kernels become custom ops in the ATen graph; Inductor compiles the graph around them

Inductor takes the whole graph whenever akg cannot help: graphs that need gradients (akg kernels
have no backward), dynamic shapes (what a guard failure and recompile usually brings), graphs that
mutate their inputs, and any error inside akg -- logged as one warning line, never raised.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.fx

from akg.dynamo import settings as settings_mod
from akg.dynamo.kernels import KernelOp, find_kernel, load_model
from akg.dynamo.subgraph import SubgraphError, subgraph_problem

log = logging.getLogger("akg.compile")


@dataclass
class Stats:
    """What the backend did in this process (``akg.dynamo.stats()``)."""
    graphs: int = 0
    subgraphs: int = 0
    store_hits: int = 0
    searches: int = 0
    kernels: int = 0             # subgraphs now running an akg kernel
    to_inductor: list[str] = field(default_factory=list)   # why whole graphs went to Inductor

    def snapshot(self) -> dict[str, Any]:
        return {"graphs": self.graphs, "subgraphs": self.subgraphs, "store_hits": self.store_hits,
                "searches": self.searches, "kernels": self.kernels, "to_inductor": list(self.to_inductor)}


_STATS = Stats()
_LOCK = threading.Lock()


def stats() -> dict[str, Any]:
    return _STATS.snapshot()


def reset_stats() -> None:
    global _STATS
    _STATS = Stats()


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0][:200]}" if text else type(e).__name__


def inductor(gm: torch.fx.GraphModule, example_inputs: list, why: str | None = None) -> Callable:
    from torch._inductor.compile_fx import compile_fx
    if why:
        _STATS.to_inductor.append(why)
        log.info("akg: Inductor compiles this graph (%s)", why)
    return compile_fx(gm, example_inputs)


# ----------------------------------------------------------------------------------------------
# when akg stays out
# ----------------------------------------------------------------------------------------------

def _why_not(gm: torch.fx.GraphModule, example_inputs: list) -> str | None:
    if any(not isinstance(x, torch.Tensor) for x in example_inputs):
        return "dynamic shapes"
    for node in gm.graph.nodes:
        val = node.meta.get("example_value")
        if node.op == "placeholder" and isinstance(val, torch.Tensor) and \
                any(not isinstance(s, int) for s in (*val.shape, *val.stride())):
            return "dynamic shapes"
    if torch.is_grad_enabled() and any(x.requires_grad for x in example_inputs):
        return "the graph needs gradients; akg kernels have no backward (run inference under torch.no_grad())"
    return None


def _aten_graph(gm: torch.fx.GraphModule, example_inputs: list) -> torch.fx.GraphModule | str:
    from torch.fx.experimental.proxy_tensor import make_fx
    # Outside dynamo's tracing context: make_fx would otherwise reuse dynamo's fake mode, whose
    # shape environment turns fresh static sizes into symbols.
    with torch.no_grad(), torch._guards.tracing(None):
        aten = make_fx(gm, tracing_mode="fake")(*example_inputs)
    for node in aten.graph.nodes:
        if node.op == "call_function" and isinstance(node.target, torch._ops.OpOverload) and node.target._schema.is_mutable:
            return f"the graph mutates tensors ({node.target})"
    return aten


def _graph_device(aten: torch.fx.GraphModule) -> str | None:
    types = {n.meta["val"].device.type for n in aten.graph.nodes
             if n.op == "placeholder" and isinstance(n.meta.get("val"), torch.Tensor)}
    return types.pop() if len(types) == 1 else None


def _target(cfg: settings_mod.CompileSettings, device_type: str):
    """The akg target for a graph on ``device_type``; an AkgError when none fits."""
    from akg import plugins
    from akg.errors import AkgError
    from akg.pipeline import resolve_target
    # Several backends may share one torch device type (one vendor's GPUs under another's name): the one
    # present on this machine holds the tensors.
    device = cfg.device or next((b.name for b in plugins.backends().values()
                                 if torch.device(b.torch_device).type == device_type and b.available()), None)
    if device is None:
        raise AkgError(f"no available akg backend runs {device_type} tensors")
    if torch.device(plugins.get_backend(device).torch_device).type != device_type:
        raise AkgError(f"akg device {device!r} does not hold this graph's {device_type} tensors")
    dsl = cfg.dsl or _default_dsl(device)
    if dsl is None:
        raise AkgError(f"no installed DSL with a working toolchain is timed meaningfully on {device}")
    target = resolve_target(dsl, device)
    if target.device not in target.dsl.timing_meaningful_on:
        # Correct but unmeasured kernels (an interpreter, say) would only slow the model down.
        raise AkgError(f"{dsl} kernels are not timed meaningfully on {device}")
    return target


def _default_dsl(device: str) -> str | None:
    """Of the DSLs timed meaningfully on ``device`` whose toolchain is here, the one with the most
    kernel families (more of the graph becomes akg's); the first registered on a tie."""
    from akg import plugins
    usable = [d for d in plugins.dsls().values()
              if device in d.timing_meaningful_on and plugins.toolchain_problem(d) is None]
    return max(usable, key=lambda d: len(d.families)).name if usable else None


# ----------------------------------------------------------------------------------------------
# partition, look up or search, splice
# ----------------------------------------------------------------------------------------------

def _partitions(aten: torch.fx.GraphModule, support) -> list[dict]:
    from torch.fx.passes.infra.partitioner import CapabilityBasedPartitioner
    # No horizontal fusion: a subgraph is a connected piece of the program, so the same piece in
    # another model (next to other work) is the same problem and a store hit.
    try:
        partitioner = CapabilityBasedPartitioner(aten, support, allows_single_node_partition=True,
                                                 skip_horizontal_fusion=True)
    except TypeError:   # a torch older than the option: partitions may then merge side by side
        partitioner = CapabilityBasedPartitioner(aten, support, allows_single_node_partition=True)
    found = partitioner.propose_partitions()
    # Nodes in graph order: the fuser breaks ties by the order it is given, and a partition's node
    # set has none, while the subgraph's text (its inputs' order) must not vary between processes.
    position = {n: i for i, n in enumerate(aten.graph.nodes)}
    return [dict.fromkeys(sorted(p.nodes, key=position.__getitem__)) for p in found if support.worth_a_kernel(p.nodes)]


def _kernel_for(sub_gm: torch.fx.GraphModule, target, cfg) -> KernelOp | None:
    """A KernelOp for one fused partition, or None (the partition stays in the graph for Inductor)."""
    try:
        sub = subgraph_problem(sub_gm, target.dsl.name)
    except SubgraphError as e:
        log.info("akg: a subgraph stays with Inductor (%s)", e)
        return None
    _STATS.subgraphs += 1
    try:
        found = find_kernel(sub, target, cfg)
    except Exception as e:   # the search must never break the user's model
        log.warning("akg: subgraph %s goes to Inductor: %s", sub.digest, _first_line(e),
                    exc_info=log.isEnabledFor(logging.DEBUG))
        return None
    if found is None:
        log.info("akg: subgraph %s is not in the store and the budget is 0; Inductor runs it", sub.digest)
        return None
    if found.searched:
        _STATS.searches += 1
    else:
        _STATS.store_hits += 1
    if found.candidate_id is None:
        log.info("akg: no kernel for subgraph %s (%s); Inductor runs it", sub.digest, found.note)
        return None
    try:
        kernel = KernelOp(found.candidate_id, load_model(found.candidate_id, found.source), sub, sub_gm)
    except Exception as e:
        log.warning("akg: kernel %s could not be loaded (%s); Inductor runs subgraph %s",
                    found.candidate_id, _first_line(e), sub.digest)
        return None
    _STATS.kernels += 1
    log.info("akg: subgraph %s runs verified kernel %s (%s)", sub.digest, found.candidate_id,
             "searched" if found.searched else "from the store")
    return kernel


def backend(gm: torch.fx.GraphModule, example_inputs: list) -> Callable:
    """The torch.compile backend named "akg"."""
    with _LOCK:
        _STATS.graphs += 1
        try:
            cfg = settings_mod.current()
        except Exception as e:
            log.warning("akg: %s; Inductor compiles the graph", _first_line(e))
            return inductor(gm, example_inputs, "bad akg settings")
        why = _why_not(gm, example_inputs)
        if why:
            return inductor(gm, example_inputs, why)
        try:
            built = _with_kernels(gm, example_inputs, cfg)
        except Exception as e:
            log.warning("akg: %s; Inductor compiles the graph", _first_line(e))
            return inductor(gm, example_inputs, f"akg failed ({_first_line(e)})")
        if isinstance(built, str):
            return inductor(gm, example_inputs, built)
        return built


def _with_kernels(gm: torch.fx.GraphModule, example_inputs: list, cfg) -> Callable | str:
    from akg.dynamo.support import AkgSupport
    aten = _aten_graph(gm, example_inputs)
    if isinstance(aten, str):
        return aten
    device_type = _graph_device(aten)
    if device_type is None:
        return "tensors on several devices"
    target = _target(cfg, device_type)
    fused = _fused(aten, target, cfg, AkgSupport(target.dsl))
    if fused is None:
        return "akg has no kernel for any part of it"
    try:
        return inductor(fused, example_inputs)
    except Exception as e:   # Inductor could not take the graph around the kernels: run it as is
        log.warning("akg: Inductor failed around akg kernels (%s); the rest of the graph runs eagerly", _first_line(e))
        return fused


def _fused(aten: torch.fx.GraphModule, target, cfg, support) -> torch.fx.GraphModule | None:
    from torch.fx.passes.utils.fuser_utils import fuse_by_partitions
    partitions = _partitions(aten, support)
    if not partitions:
        return None
    fused = fuse_by_partitions(aten, partitions, prefix="akg_sub_", always_return_tuple=True)
    used = 0
    for node in list(fused.graph.nodes):
        if node.op != "call_module" or not str(node.target).startswith("akg_sub_"):
            continue
        kernel = _kernel_for(getattr(fused, node.target), target, cfg)
        if kernel is None:
            continue   # stays a submodule; Inductor's tracing inlines it
        with fused.graph.inserting_before(node):
            call = fused.graph.call_function(kernel.op, (list(node.args),))
        node.replace_all_uses_with(call)
        fused.graph.erase_node(node)
        used += 1
    if not used:
        return None
    fused.graph.lint()
    fused.recompile()
    return fused
