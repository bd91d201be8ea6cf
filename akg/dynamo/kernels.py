"""From a subgraph to a callable verified kernel: the store first, a search within the budget second.

Only a candidate the harness fully verified is used: the best of a finished run, generated (not the
reference), with an accepted verdict under the strict policy on this very device and hardware. A
run whose best was the reference is a store hit too -- it says akg has nothing better, so the
subgraph stays with Inductor and is not searched again.

A kernel runs as a ``torch.library`` custom op, so Inductor compiles the rest of the graph around
it and sees only its output shapes and strides (the fake implementation).
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from akg.dynamo.settings import CompileSettings
from akg.dynamo.subgraph import Subgraph, TensorSpec

log = logging.getLogger("akg.compile")

POLICY = "strict"


@dataclass(frozen=True)
class Found:
    candidate_id: str | None   # None: akg has nothing better than the reference for this subgraph
    source: str | None
    searched: bool             # False: a store hit
    note: str = ""             # why there is no kernel, when there is none


def _search_options(settings: CompileSettings):
    from akg.search import SearchOptions
    return SearchOptions(budget=settings.budget, time_limit_s=settings.time_limit or None, policy=POLICY,
                         mode=settings.mode)


def _llm(settings: CompileSettings):
    """LLM mode's run (the same as ``akg optimize --llm MODEL --mode M``), or None."""
    if settings.mode == "compiler":
        return None
    from akg.evolve import llm_run
    return llm_run({"model": settings.llm, "url": settings.llm_url, "mode": settings.mode})[1]


def usable(verdict, baseline: str) -> bool:
    """A fully verified kernel, and faster than ``baseline`` where the harness timed that.
    (Faster than eager is the search's own rule for every result it returns.)"""
    if verdict is None or not verdict.accepted:
        return False
    if baseline == "inductor":
        vs_compile = dict(verdict.speedups).get("vs_compile")
        if vs_compile is not None and vs_compile <= 1.0:
            log.info("akg: kernel %s is verified but %.2fx Inductor's time; Inductor keeps the subgraph",
                     verdict.candidate_id, vs_compile)
            return False
    return True


def _verified(db, candidate_id: str, target, settings: CompileSettings) -> bool:
    return usable(db.verdict(candidate_id, target.device, target.hardware.name, POLICY), settings.baseline)


def _from_store(db, sub: Subgraph, target, settings: CompileSettings) -> Found | None:
    run = db.best_of_finished(sub.digest, target.dsl.name, target.device, target.hardware.name)
    if run is None or (run.origin == "reference" and (run.judged == 0 or run.pending)):
        return None   # never searched, or the search was cut short before it could answer
    cid, source = run.best, run.source
    if run.origin == "reference":
        return Found(None, None, False, "an earlier search found nothing faster than eager")
    if not _verified(db, cid, target, settings):
        return Found(None, None, False, f"the stored kernel is not faster than {settings.baseline}")
    return Found(cid, source, False)


def _search(db, sub: Subgraph, target, settings: CompileSettings) -> Found:
    from akg.harness import HarnessConfig
    from akg.pipeline import optimize_problem
    from akg.problem import load_problem
    # Timing the subgraph under Inductor costs one more compile; only worth it when Inductor is
    # what the kernel must beat.
    harness = HarnessConfig().replace(measure_compile=settings.baseline == "inductor")
    with tempfile.TemporaryDirectory(prefix="akg-compile-") as folder:
        path = Path(folder) / f"subgraph_{sub.digest}.py"
        path.write_text(sub.source)
        problem = load_problem(path)
        report = optimize_problem(problem, target, None, db, _search_options(settings), harness, llm=_llm(settings))
    best = report["best"]
    if best["origin"] == "reference" or not best["correct"]:
        notes = "; ".join(report.get("notes") or ["nothing verified was faster than eager"])
        return Found(None, None, True, f"search: {notes[:400]}")
    if not _verified(db, best["candidate_id"], target, settings):
        return Found(None, None, True, f"the best verified kernel is not faster than {settings.baseline}")
    return Found(best["candidate_id"], db.candidate_source(best["candidate_id"]), True)


def find_kernel(sub: Subgraph, target, settings: CompileSettings) -> Found | None:
    """The store's answer for ``sub``, else a search's; None on a store miss with budget 0.

    Runs on a thread of its own: torch.compile calls backends with its tracing state (fake tensor
    and dispatch modes, grad mode) set on the calling thread, and the harness's own tensor work
    must not run under it."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="akg-compile") as pool:
        return pool.submit(_find_kernel, sub, target, settings).result()


def _find_kernel(sub: Subgraph, target, settings: CompileSettings) -> Found | None:
    from akg.store import DEFAULT_STORE, Store
    with Store(settings.store or DEFAULT_STORE) as db:
        found = _from_store(db, sub, target, settings)
        if found is not None or settings.budget == 0:
            return found
        return _search(db, sub, target, settings)


def _cache_dir() -> Path:
    root = os.environ.get("AKG_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "akg")
    return Path(root) / "compiled"


def load_model(candidate_id: str, source: str) -> torch.nn.Module:
    """The verified candidate's ModelNew, built as its file is (a module of its own on disk)."""
    folder = _cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"akg_{candidate_id}.py"
    if not path.exists() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    name = f"akg_compiled_{candidate_id}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.ModelNew().eval()


def _conform(out: torch.Tensor, spec: TensorSpec, taken: set[int]) -> torch.Tensor:
    """The output as the surrounding graph was compiled to expect it: same strides, own storage."""
    ptr = out.untyped_storage().data_ptr()
    if tuple(out.stride()) == spec.stride and ptr not in taken:
        taken.add(ptr)
        return out
    fresh = torch.empty_strided(spec.shape, spec.stride, dtype=spec.dtype, device=out.device)
    fresh.copy_(out)
    taken.add(fresh.untyped_storage().data_ptr())
    return fresh


class KernelOp:
    """A verified kernel as the custom op ``akg::k_<candidate id>``: ``(Tensor[]) -> Tensor[]``.

    If the kernel raises at run time (a toolchain gone missing, say) the subgraph's own code runs
    instead, once with a warning, and from then on."""

    _ops: dict[str, object] = {}

    def __init__(self, candidate_id: str, model: torch.nn.Module, sub: Subgraph, eager: Callable):
        self.candidate_id, self.model, self.sub, self.eager = candidate_id, model, sub, eager
        self.broken = False
        self.op = self._register()

    def _register(self):
        name = f"akg::k_{self.candidate_id}_{self.sub.digest}"
        if name not in KernelOp._ops:
            op = torch.library.custom_op(name, mutates_args=(), schema="(Tensor[] inputs) -> Tensor[]")(_dispatch(name))
            op.register_fake(_fake(self.sub))
            KernelOp._ops[name] = op
        _IMPLS[name] = self
        return getattr(torch.ops.akg, name.split("::")[1]).default

    def __call__(self, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        args = [x.contiguous() for x in inputs]   # the kernel was verified on contiguous inputs
        if not self.broken:
            try:
                with torch.no_grad():
                    outs = self.model(*args)
            except Exception as e:
                self.broken = True
                log.warning("akg kernel %s failed at run time (%s: %s); its subgraph runs without it from now on",
                            self.candidate_id, type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
        if self.broken:
            outs = self.eager(*args)
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        taken = {x.untyped_storage().data_ptr() for x in inputs}
        return [_conform(o, s, taken) for o, s in zip(outs, self.sub.outputs)]


_IMPLS: dict[str, KernelOp] = {}


def _dispatch(name: str):
    def impl(inputs: list[torch.Tensor]) -> list[torch.Tensor]:
        return _IMPLS[name](inputs)
    return impl


def _fake(sub: Subgraph):
    def fake(inputs):
        return [torch.empty_strided(s.shape, s.stride, dtype=s.dtype, device=s.device) for s in sub.outputs]
    return fake
