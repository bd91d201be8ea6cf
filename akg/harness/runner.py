"""Worker side: load a candidate next to the reference, run it on test cases, time it.

Runs inside the worker process with the candidate, so it binds every function it relies on at
import time (before candidate code exists) and reports what it observed; the conductor judges.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import torch
import torch._dynamo  # noqa: F401  it rewraps torch functions on import; do that before snapshots

from akg import plugins
from akg.targets import median_device_ms
from akg.harness import guard, inputs as inputs_module, memory, messages as m, protocol, randomness
from akg.harness.compare import OutputInfo, dtype_name
from akg.harness.inputs import clone_args, make_inputs
from akg.problem import Problem, load_problem, seed_everything

# Bound now: a candidate that replaces these names later does not change what the harness calls.
_clone = torch.Tensor.clone
_equal = torch.equal
_empty = torch.empty
_perf_counter = time.perf_counter
_export = protocol.export
_seed = seed_everything
_RandomDraws = randomness.RandomDraws
_sleep = time.sleep
_Tensor = torch.Tensor
_copy_into = torch.Tensor.copy_
_synchronize_all = memory.synchronize

# Byte patterns written into memory the allocator is about to hand out: 0xFF reads as NaN in
# every float type, 0x7F as a huge finite value; an output that depends on them was not written.
POISON_BYTES = (0xFF, 0x7F)


def one_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


class WorkerState:
    def __init__(self, device: str, scratch: Path) -> None:
        self.device = device
        self.scratch = scratch
        self.backend = plugins.get_backend(device.split(":")[0])
        self.problems: dict[str, Problem] = {}
        self.loaded: LoadedCandidate | None = None
        self.compiled_baseline: tuple | None = None    # (compiled model, inputs) for time_compiled
        self._warm_thread_pool()

    def _warm_thread_pool(self) -> None:
        # Start torch's intra-op threads now, so threads seen later belong to the candidate; and let
        # the backend make its lazy state (flush buffer, detected spec) before snapshots see it.
        torch.ones(1 << 16).sum()
        self.backend.flush_cache()

    def handle(self, message: m.Message) -> m.Message:
        try:
            if isinstance(message, m.Load):
                return self.load(message)
            if isinstance(message, m.RunCase):
                return self._require_loaded().run_case(message)
            if isinstance(message, m.Sample):
                return self._require_loaded().sample(message)
            if isinstance(message, m.Time):
                return self._require_loaded().time(message)
            if isinstance(message, m.Baselines):
                return self.baselines(message)
            if isinstance(message, m.CompileBaseline):
                return self.compile_baseline(message)
            if isinstance(message, m.TimeCompiled):
                return self.time_compiled(message)
            return m.Failure(f"unknown request {message.OP!r}")
        except BaseException as e:  # the candidate may raise anything, SystemExit included
            return m.Failure(one_line(e), traceback.format_exc()[-2000:])

    def _require_loaded(self) -> "LoadedCandidate":
        if self.loaded is None:
            raise RuntimeError("no candidate loaded")
        return self.loaded

    def problem(self, path: str) -> Problem:
        if path not in self.problems:
            self.problems[path] = load_problem(path)
        return self.problems[path]

    def load(self, message: m.Load) -> m.Message:
        self.loaded = None
        problem = self.problem(message.problem_path)
        reference = problem.build_model(message.param_seed).to(self.device)
        snapshot = guard.IntegritySnapshot({
            "reference Model": problem.model_cls, "backend class": type(self.backend), "backend": self.backend,
            "akg.harness.runner": sys.modules[__name__], "akg.harness.guard": guard,
            "akg.harness.inputs": inputs_module, "akg.harness.protocol": protocol,
            "LoadedCandidate": LoadedCandidate, "WorkerState": WorkerState})
        try:
            module = self._import_candidate(message.source, message.candidate_id)
            model = _build_candidate(module, problem, message.param_seed, reference, self.device)
            declared = _declared_ops(module)
        except BaseException as e:
            return m.Failure("load: " + one_line(e), "", tuple(snapshot.changes()))
        self.loaded = LoadedCandidate(self, problem, reference, model, declared, message.policy, snapshot)
        return m.Loaded(tuple(declared), tuple(snapshot.changes()))

    def _import_candidate(self, source: str, candidate_id: str):
        # A real file: DSLs that compile Python functions (and inspect) need their source.
        safe_id = "".join(c if c.isalnum() else "_" for c in candidate_id)[:40]
        path = self.scratch / f"candidate_{safe_id}.py"
        path.write_text(source)
        name = f"akg_candidate_{safe_id}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    def baselines(self, message: m.Baselines) -> m.Measured:
        problem = self.problem(message.problem_path)
        model = problem.build_model(message.param_seed).to(self.device)
        inputs = make_inputs(problem, message.seed, "problem", self.device)
        eager = _median_time(self.backend, model, inputs, message.warmup, message.trials)
        compiled_ms = None
        if message.compile:
            compiled = torch.compile(model)
            compiled_ms = _median_time(self.backend, compiled, inputs, message.warmup, message.trials)
        return m.Measured(eager, compiled_ms)

    def compile_baseline(self, message: m.CompileBaseline) -> m.Compiled:
        """The cold torch.compile (codegen, mostly CPU work) and one call, kept for ``time_compiled``."""
        problem = self.problem(message.problem_path)
        model = problem.build_model(message.param_seed).to(self.device)
        inputs = make_inputs(problem, message.seed, "problem", self.device)
        compiled = torch.compile(model)
        began = _perf_counter()
        with torch.no_grad():
            compiled(*clone_args(inputs))
        _synchronize_all()
        self.compiled_baseline = (compiled, inputs)
        return m.Compiled(_perf_counter() - began)

    def time_compiled(self, message: m.TimeCompiled) -> m.Compiled:
        if self.compiled_baseline is None:
            raise RuntimeError("no compiled baseline: send compile_baseline first")
        compiled, inputs = self.compiled_baseline
        return m.Compiled(0.0, _median_time(self.backend, compiled, inputs, message.warmup, message.trials))


def _build_candidate(module, problem: Problem, seed: int, reference: torch.nn.Module, device: str):
    cls = getattr(module, "ModelNew", None)
    if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        raise TypeError("the candidate defines no class ModelNew(nn.Module)")
    seed_everything(seed)
    model = cls(*problem.get_init_inputs())
    copy_state(reference, model)
    return model.to(device)


def copy_state(reference: torch.nn.Module, candidate: torch.nn.Module) -> None:
    """Parameters and buffers by name where the shapes match, so both compute with the same weights."""
    source = dict(reference.named_parameters()) | dict(reference.named_buffers())
    with torch.no_grad():
        for name, tensor in list(candidate.named_parameters()) + list(candidate.named_buffers()):
            ref = source.get(name)
            if ref is not None and ref.shape == tensor.shape and ref.dtype == tensor.dtype:
                tensor.copy_(ref)


def _declared_ops(module) -> tuple[str, ...]:
    declared = getattr(module, "AKG_LIBRARY_OPS", ())
    if not isinstance(declared, (tuple, list)) or not all(isinstance(o, str) for o in declared):
        raise TypeError("AKG_LIBRARY_OPS must be a tuple of op names like 'aten.mm.default'")
    return tuple(declared)


def _median_time(backend, model, inputs, warmup: int, trials: int) -> float:
    with torch.no_grad():
        return median_device_ms(backend, lambda: functools.partial(model, *clone_args(inputs)), warmup, trials)


def _storage_ptr(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except Exception:
        return -1


class LoadedCandidate:
    def __init__(self, state: WorkerState, problem, reference, model, declared, policy, snapshot) -> None:
        self.state, self.problem, self.reference, self.model = state, problem, reference, model
        self.declared, self.policy, self.snapshot = declared, policy, snapshot
        self.kept_outputs: list[torch.Tensor] = []   # earlier results, alive so aliasing shows

    # ---- correctness ----------------------------------------------------------------------------

    def run_case(self, message: m.RunCase) -> m.CaseResult:
        memory.reset_peak(self.state.device)
        inputs = self._inputs(message.inputs, message.seed, message.distribution)
        buffers = _buffers(message.outputs_to) or (None, None)
        passes = [self._one_pass(inputs, pattern, message, buffers[i], record=(i == 0))
                  for i, pattern in enumerate(POISON_BYTES)]
        first = passes[0]
        return m.CaseResult(
            infos=first["infos"],
            outputs=tuple(p["outputs"] for p in passes),
            mutated=first["mutated"],
            aliases_input=first["aliases_input"],
            aliases_earlier=first["aliases_earlier"] or passes[1]["aliases_earlier"],
            late_writes=first["late_writes"] or passes[1]["late_writes"],
            new_threads=max(first["new_threads"], passes[1]["new_threads"]),
            violations=first["violations"],
            integrity=tuple(self.snapshot.changes()),
            random_draws=first["draws"],
            written=tuple(p["written"] for p in passes),
            peak_bytes=memory.peak_bytes(self.state.device),
        )

    def _inputs(self, shared: dict | None, seed: int, distribution: str) -> list:
        """The conductor's draw, mapped from the files or device memory it passed, or where it
        passed none (or they do not map) the same draw made here."""
        if shared is not None:
            try:
                return inputs_module.to_device(inputs_module.mapped_draw(shared, seed), self.state.device)
            except protocol.ProtocolError:
                pass
        return make_inputs(self.problem, seed, distribution, self.state.device)

    def _one_pass(self, inputs: list, pattern: int, message: m.RunCase, buffers, record: bool) -> dict:
        _poison(message.output_nbytes, pattern, self.state.device)
        args = clone_args(inputs)
        threads_before = guard.python_threads()
        recorder = guard.OpRecorder(self.declared) if record and self.policy == "strict" else None
        draws = _RandomDraws() if record and message.record_draws else None
        with torch.no_grad():
            _seed(message.forward_seed)
            returned = self._forward(args, recorder, draws)
        items = list(returned) if isinstance(returned, (tuple, list)) else [returned]
        at_return = [_clone(t) if _is_plain(t) else None for t in items]
        self.state.backend.synchronize()
        _sleep(message.async_delay_s)
        self.state.backend.synchronize()
        late = any(snap is not None and not _same(snap, t) for snap, t in zip(at_return, items))
        new_threads = len(guard.python_threads() - threads_before)
        outputs, written = _deliver(items, buffers)
        result = {
            "infos": tuple(_describe(t) for t in items),
            "outputs": outputs,
            "written": written,
            "mutated": tuple(i for i, (a, b) in enumerate(zip(args, inputs))
                             if isinstance(a, _Tensor) and not _same(a, b)),
            "aliases_input": tuple(tuple(j for j, a in enumerate(args) if isinstance(a, _Tensor) and _is_plain(t)
                                         and _storage_ptr(a) == _storage_ptr(t)) for t in items),
            "aliases_earlier": any(_is_plain(t) and any(_storage_ptr(t) == _storage_ptr(k) for k in self.kept_outputs)
                                   for t in items),
            "late_writes": late,
            "new_threads": new_threads,
            "violations": tuple(guard.policy_violations(recorder.ops, self.declared)) if recorder else (),
            "draws": tuple(draws.draws) if draws is not None else (),
        }
        # Earlier results stay alive so that an output reusing one shows; on a device only as
        # many as fit a small multiple of the outputs' size (see memory.keep_budget).
        self.kept_outputs = memory.keep(self.state.device, [t for t in items if _is_plain(t)], self.kept_outputs)
        return result

    def _forward(self, args: list, recorder, draws):
        """The candidate's forward under the op recorder (strict policy) and the random-draw
        recorder, each where asked for."""
        with contextlib.ExitStack() as scopes:
            if recorder is not None:
                scopes.enter_context(recorder)
                scopes.enter_context(guard.DeclaredOpScope(recorder))
            if draws is not None:
                scopes.enter_context(draws)
            return self.model(*args)

    def sample(self, message: m.Sample) -> m.Samples:
        """The candidate's outputs on one case's inputs under each forward seed, each output read
        at the statistical check's fixed element positions."""
        inputs = self._inputs(message.inputs, message.seed, message.distribution)
        outputs = []
        with torch.no_grad():
            for forward_seed in message.forward_seeds:
                args = clone_args(inputs)
                _seed(forward_seed)
                returned = self.model(*args)
                items = list(returned) if isinstance(returned, (tuple, list)) else [returned]
                self.state.backend.synchronize()
                outputs.append(tuple(_export(_at_positions(t)) if _is_plain(t) else None for t in items))
        return m.Samples(tuple(outputs), tuple(self.snapshot.changes()))

    # ---- timing ---------------------------------------------------------------------------------

    def time(self, message: m.Time) -> m.Timed:
        backend = self.state.backend
        memory.reset_peak(self.state.device)
        shared = message.inputs or [None] * len(message.seeds)
        input_sets = [self._inputs(x, s, "problem") for s, x in zip(message.seeds, shared)]
        ref_ms, cand_ms = [], []
        last_output, last_seed = None, None
        with torch.no_grad():
            for trial in range(message.warmup + message.trials):
                k = trial % len(input_sets)
                # Alternate which goes first, so neither always finds the other's data in cache.
                order = ("ref", "cand") if trial % 2 == 0 else ("cand", "ref")
                for who in order:
                    model = self.reference if who == "ref" else self.model
                    args = clone_args(input_sets[k])
                    box = []
                    backend.flush_cache()
                    if message.forward_seeds is not None:  # a model that draws: the same draws each call
                        _seed(message.forward_seeds[k])
                    ms = backend.time_call(lambda: (box.append(model(*args)), backend.synchronize()))
                    if trial >= message.warmup:
                        (ref_ms if who == "ref" else cand_ms).append(ms)
                    if who == "cand":
                        last_output, last_seed = box[0], message.seeds[k]
        items = list(last_output) if isinstance(last_output, (tuple, list)) else [last_output]
        outputs, written = _deliver(items, _buffers(message.outputs_to))
        return m.Timed(
            ref_ms=tuple(ref_ms), cand_ms=tuple(cand_ms), last_seed=last_seed, last_outputs=outputs,
            integrity=tuple(self.snapshot.changes()),
            interpreted=interpreted(),
            written=written, peak_bytes=memory.peak_bytes(self.state.device))


def _deliver(items: list, buffers) -> tuple[tuple, tuple[bool, ...]]:
    """The outputs for the conductor: copied into the device buffers it passed where one of the
    right shape and dtype is there (nothing crosses to the host), else exported (a sealed file or
    an inline copy)."""
    outputs, written = [], []
    for i, t in enumerate(items):
        buffer = buffers[i] if buffers is not None and i < len(buffers) else None
        if (_is_plain(t) and isinstance(buffer, _Tensor) and buffer.shape == t.shape and buffer.dtype == t.dtype
                and buffer.device == t.device):
            _copy_into(buffer, t)
            outputs.append(None)
            written.append(True)
        else:
            outputs.append(_export(t) if _is_plain(t) else None)
            written.append(False)
    if any(written):
        _synchronize_all()
    return tuple(outputs), tuple(written)


def _buffers(handles):
    """The conductor's device buffers for the outputs, opened from their handles; None where it
    passed none or they do not open (the outputs are then exported)."""
    if handles is None:
        return None
    try:
        return protocol.resolve(handles, os.getpid(), device_handles=True)
    except protocol.ProtocolError:
        return None


def _at_positions(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1)[randomness.sample_index(t.numel(), t.device)]


def interpreted() -> bool:
    """Whether a DSL's interpreter ran the candidate's kernels here (its flag set in this process,
    by the candidate itself): then its timings mean nothing."""
    flags = {f for dsl in plugins.dsls().values() for f in dsl.interpreter_flags}
    return any(os.environ.get(f, "") not in ("", "0") for f in flags)


def _poison(nbytes_list: list[int], pattern: int, device: str) -> None:
    # Allocate, fill and free twice per size: the first free may return memory to the system,
    # the second leaves filled blocks in the allocator for the candidate's next allocation.
    for _ in range(2):
        blocks = [_empty(n, dtype=torch.uint8, device=device).fill_(pattern) for n in nbytes_list if n > 0]
        del blocks


def _is_plain(t: Any) -> bool:
    return (type(t) is _Tensor and t.layout == torch.strided and t.device.type != "meta")


def _describe(t: Any) -> OutputInfo:
    if not isinstance(t, _Tensor):
        return OutputInfo(type(t).__name__, False, (), "", "")
    plain = _is_plain(t)
    if not plain:
        return OutputInfo(type(t).__name__, False, (), "", "")
    return OutputInfo("Tensor", True, tuple(t.shape), dtype_name(t.dtype), str(t.device))


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if _equal(a, b):
        return True  # one pass; NaNs never compare equal, so the slower path below handles them
    if a.is_floating_point():
        nan_a, nan_b = a.isnan(), b.isnan()
        return _equal(nan_a, nan_b) and _equal(a.masked_fill(nan_a, 0), b.masked_fill(nan_b, 0))
    return _equal(a, b)
