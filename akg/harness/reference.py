"""The reference's side of every test case, computed in the conductor where no candidate runs.

Expected outputs never enter a worker before the candidate has returned: the worker ships the
candidate's outputs here and the comparison happens in this process.

On an accelerator everything stays on the device: inputs are drawn there, the reference runs there
and its outputs stay there; cases are cached up to a share of the device's free memory and
recomputed past it (a draw and a forward cost milliseconds there). The torch seed is set to
``forward_seed(seed)`` right before every forward, here and in the worker, so a model that draws
random numbers draws the same ones in both.
"""
from __future__ import annotations

import copy
import os
import random
from dataclasses import dataclass

import torch

from akg.harness import memory, protocol, randomness
from akg.harness.inputs import clone_args, draw_inputs, mapped_draw, to_device
from akg.problem import Problem, flatten_outputs, seed_everything

# Inputs kept in sealed memory files for the workers, per reference; cases past it are drawn by
# each worker itself, as a worker does wherever the files cannot be made.
SHARED_INPUT_BYTES = 8 << 30
# On an accelerator: the share of the device's free memory (when the reference is built) that
# cached cases (inputs and expected outputs) may hold; older cases are dropped past it.
DEVICE_CACHE_SHARE = 0.25


def forward_seed(seed: int) -> int:
    """The torch seed set right before every forward of a case drawn with ``seed``."""
    return 10007 + seed


@dataclass(frozen=True)
class ExpectedCase:
    outputs: list[torch.Tensor]                # on the CPU; on the device for an accelerator
    aliases_input: list[list[int]]             # per output: inputs whose storage it shares
    mutated: list[int]                         # inputs the reference changes in place
    draws: tuple[str, ...] = ()                # digests of the framework random draws it made

    @property
    def output_nbytes(self) -> list[int]:
        return [t.numel() * t.element_size() for t in self.outputs]

    @property
    def nbytes(self) -> int:
        return sum(self.output_nbytes)


class Reference:
    """The problem's Model built under the parameter seed, and its results per case (cached)."""

    def __init__(self, problem: Problem, device: str, param_seed: int, cache_bytes: int | None = None) -> None:
        """``cache_bytes``: at most this much of cached cases on an accelerator (the pool passes
        ``memory.CACHED_CASES`` x the footprint, so the peak stays the stated multiple)."""
        self.problem = problem
        self.device = device
        self.param_seed = param_seed
        self.on_device = memory.is_accelerator(device)
        memory.reset_peak(device)
        self.model = problem.build_model(param_seed).to(device)
        self._cases: dict[tuple[int, str], ExpectedCase] = {}
        self._truths: dict[tuple[int, str], list[torch.Tensor] | None] = {}
        self._shared: dict[tuple[int, str], dict | None] = {}
        self._shared_bytes = 0
        self._fds: list[int] = []
        # accelerator only: the drawn inputs (kept alive while workers map them) and their digests
        self._device_inputs: dict[tuple[int, str], list] = {}
        self._digests: dict[tuple[int, str], list[str]] = {}
        free = memory.free_bytes(device)
        budgets = [b for b in (int(DEVICE_CACHE_SHARE * free) if free else None, cache_bytes) if b]
        self._cache_budget = min(budgets) if budgets else None
        self._supports: dict[tuple[int, str], randomness.Support | None] = {}
        self._weights: torch.Tensor | None = None   # secret digest weights (accelerator only)

    @property
    def peak_bytes(self) -> int:
        """The most device memory this process held since the reference was built (0 on a CPU)."""
        return memory.peak_bytes(self.device)

    def case(self, seed: int, distribution: str) -> ExpectedCase:
        key = (seed, distribution)
        if key not in self._cases:
            self._cases[key] = self._run(seed, distribution)
            self._evict(keep=key)
        return self._cases[key]

    def shared_inputs(self, seed: int, distribution: str) -> dict | None:
        """The case's inputs as drawn here, for a worker to map instead of drawing them again
        (hundreds of MB take seconds to draw); None where the worker must draw them itself."""
        key = (seed, distribution)
        if self.on_device:
            self._draw_on_device(key)
        elif key not in self._shared:
            self._draw(seed, distribution)
        return self._shared[key]

    def inputs_intact(self, seed: int, distribution: str) -> bool:
        """Accelerator only (a CPU worker maps sealed, read-only copies): whether the inputs a
        worker mapped still hold what was drawn. A worker's mapping of device memory is writable;
        a case whose inputs changed is dropped, and the next use draws it again."""
        key = (seed, distribution)
        inputs = self._device_inputs.get(key)
        if inputs is None:
            return True
        intact = self._fingerprint(inputs) == self._digests[key]
        if not intact:
            self._drop(key)
        return intact

    def close(self) -> None:
        while self._fds:
            os.close(self._fds.pop())
        self._device_inputs.clear()
        self._shared.clear()
        self._cases.clear()

    def _drop(self, key) -> None:
        for table in (self._cases, self._shared, self._device_inputs, self._digests, self._truths, self._supports):
            table.pop(key, None)

    def _evict(self, keep) -> None:
        """Accelerator: drop the oldest cases while the cached ones exceed the budget."""
        if not self.on_device or self._cache_budget is None:
            return
        while True:
            held = sum(c.nbytes for c in self._cases.values()) + sum(
                _nbytes(x) for x in self._device_inputs.values())
            older = [k for k in self._cases if k != keep]
            if held <= self._cache_budget or not older:
                return
            self._drop(older[0])

    def _fingerprint(self, inputs: list) -> list[str]:
        if self._weights is None:
            self._weights = randomness.secret_weights(self.device)
        return [randomness.digest(x, self._weights) if isinstance(x, torch.Tensor) else repr(x) for x in inputs]

    def _draw(self, seed: int, distribution: str) -> list:
        """The case's inputs for this process's own use. On the CPU the first draw also goes into
        sealed memory files (read-only for workers). On an accelerator a fresh draw every time (a
        few milliseconds there): what workers map is writable to them, so nothing computed here
        — expected outputs, the float64 second look, samples — reads it."""
        key = (seed, distribution)
        if self.on_device:
            return to_device(draw_inputs(self.problem, seed, distribution, self.device), self.device)
        shared = self._shared.get(key)
        if shared is not None:
            return mapped_draw(shared, seed)
        inputs = draw_inputs(self.problem, seed, distribution)
        # What drawing did to the random state, so a worker that maps the files can do the same.
        rng_state, py_rng_state = torch.get_rng_state(), random.getstate()
        if key not in self._shared:
            self._shared[key] = self._share(inputs, rng_state, py_rng_state)
        return inputs

    def _draw_on_device(self, key) -> list:
        inputs = self._device_inputs.get(key)
        if inputs is None:
            seed, distribution = key
            inputs = to_device(draw_inputs(self.problem, seed, distribution, self.device), self.device)
            rng_state, py_rng_state = torch.get_rng_state(), random.getstate()
            self._device_inputs[key] = inputs
            self._digests[key] = self._fingerprint(inputs)
            wire = [protocol.share_device(x) if isinstance(x, torch.Tensor) and _device_shareable(x) else x
                    for x in inputs]
            shareable = all(not isinstance(x, torch.Tensor) or isinstance(w, dict) or x.numel() * x.element_size()
                            < protocol.SHARE_MIN_BYTES for x, w in zip(inputs, wire))
            self._shared[key] = ({"inputs": wire, "rng_state": rng_state, "py_rng_state": py_rng_state}
                                 if shareable and all(_plain(x) for x in inputs if not isinstance(x, torch.Tensor))
                                 else None)
        return inputs

    def _share(self, inputs: list, rng_state: torch.Tensor, py_rng_state: tuple) -> dict | None:
        tensors = [x for x in inputs if isinstance(x, torch.Tensor)]
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        if (not all(_shareable(t) for t in tensors) or not all(_plain(x) for x in inputs if not isinstance(x, torch.Tensor))
                or self._shared_bytes + nbytes > SHARED_INPUT_BYTES):
            return None
        wire = []
        for x in inputs:
            if isinstance(x, torch.Tensor) and x.numel() * x.element_size() >= protocol.SHARE_MIN_BYTES:
                fd, handle = protocol.seal(x)
                self._fds.append(fd)
                wire.append(handle)
            else:
                wire.append(x)  # small tensors and plain values travel in the message
        self._shared_bytes += nbytes
        return {"inputs": wire, "rng_state": rng_state, "py_rng_state": py_rng_state}

    def _run(self, seed: int, distribution: str) -> ExpectedCase:
        inputs = to_device(self._draw(seed, distribution), self.device)
        if self.on_device:
            # A fresh draw nobody else sees: the forward may take it; a digest before and after
            # tells what it changed (a clone would cost one more copy of the inputs).
            args, before = inputs, self._fingerprint(inputs)
        else:
            args = clone_args(inputs)
        draws = randomness.RandomDraws()
        with torch.no_grad(), draws:
            seed_everything(forward_seed(seed))
            outputs = flatten_outputs(self.model(*args), self.problem.name)
        aliases = [[j for j, a in enumerate(args) if isinstance(a, torch.Tensor)
                    and a.untyped_storage().data_ptr() == out.untyped_storage().data_ptr()] for out in outputs]
        if self.on_device:
            after = self._fingerprint(args)
            mutated = [i for i, (a, b, x) in enumerate(zip(before, after, args)) if isinstance(x, torch.Tensor) and a != b]
        else:
            mutated = [i for i, (a, b) in enumerate(zip(args, inputs))
                       if isinstance(a, torch.Tensor) and not torch.equal(a.nan_to_num(), b.nan_to_num())]
        # On the device the outputs stay there (the comparison runs there). A copy only of an
        # output that shares memory with the model (a parameter or buffer a later forward may
        # change): every other one is the forward's own (or a view of its private clone of the inputs).
        model_storage = {t.untyped_storage().data_ptr() for t in list(self.model.parameters()) + list(self.model.buffers())}
        kept = [(o.detach().clone() if o.untyped_storage().data_ptr() in model_storage else o.detach()).to(
                 self.device if self.on_device else "cpu") for o in outputs]
        return ExpectedCase(kept, aliases, mutated, tuple(draws.draws))

    # ---- models that draw random numbers ---------------------------------------------------------

    def random_ops(self, seed: int, distribution: str) -> bool:
        """Whether the reference drew random numbers through the framework on this case."""
        return bool(self.case(seed, distribution).draws)

    def samples(self, seed: int, distribution: str, forward_seeds) -> list[list[torch.Tensor]]:
        """Per forward seed, the reference's outputs at the statistical check's element positions."""
        inputs = to_device(self._draw(seed, distribution), self.device)
        result = []
        with torch.no_grad():
            for s in forward_seeds:
                seed_everything(s)
                outputs = flatten_outputs(self.model(*clone_args(inputs)), self.problem.name)
                result.append([_at_positions(o) for o in outputs])
        return result

    def support(self, seed: int, distribution: str) -> randomness.Support | None:
        """The two values each output element can take (every draw at one extreme), where the
        reference's own outputs of the case are all of them; else None (the draws do not act as an
        elementwise mask, or one of them has no extremes)."""
        key = (seed, distribution)
        if key not in self._supports:
            self._supports[key] = self._find_support(seed, distribution)
        return self._supports[key]

    def _find_support(self, seed: int, distribution: str) -> randomness.Support | None:
        inputs = to_device(self._draw(seed, distribution), self.device)
        extremes = []
        try:
            for high in (False, True):
                with torch.no_grad(), randomness.ExtremeDraws(high):
                    extremes.append(flatten_outputs(self.model(*clone_args(inputs)), self.problem.name))
        except randomness.NoExtremes:
            return None
        support = randomness.Support(*extremes)
        from akg.harness.config import HarnessConfig
        tolerance = lambda dtype, c=HarnessConfig(): c.tolerance(str(dtype).removeprefix("torch."))
        own = self.case(seed, distribution).outputs
        if any(not o.is_floating_point() for o in own) or support.violations(own, tolerance):
            return None
        return support

    def truth(self, seed: int, distribution: str) -> list[torch.Tensor] | None:
        """The case's outputs computed in float64 (model and floating inputs promoted), on the
        device: how far the reference itself is from exact, which bounds how exact a candidate
        must be (a TF32 convolution is about 1e-3 off). None when the model cannot run in float64."""
        key = (seed, distribution)
        if key not in self._truths:
            self._truths[key] = self._run_float64(seed, distribution)
        return self._truths[key]

    def _run_float64(self, seed: int, distribution: str) -> list[torch.Tensor] | None:
        inputs = to_device(self._draw(seed, distribution), self.device)   # the case's own draw
        promoted = [x.double() if isinstance(x, torch.Tensor) and x.is_floating_point() else x for x in inputs]
        try:
            model = copy.deepcopy(self.model).double()
            with torch.no_grad():
                outputs = flatten_outputs(model(*promoted), self.problem.name)
        except Exception:   # an op without a float64 kernel: the fixed tolerance stays the only bar
            return None
        return [o.detach() for o in outputs]


def _at_positions(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(-1)[randomness.sample_index(t.numel(), t.device)].double()


def _nbytes(inputs: list) -> int:
    return sum(x.numel() * x.element_size() for x in inputs if isinstance(x, torch.Tensor))


def _device_shareable(t: torch.Tensor) -> bool:
    """A device tensor passed to workers by handle (smaller ones travel in the message)."""
    return (type(t) is torch.Tensor and t.device.type != "cpu" and t.layout == torch.strided
            and not t.requires_grad and t.numel() * t.element_size() >= protocol.SHARE_MIN_BYTES
            and str(t.dtype).removeprefix("torch.") in protocol.SHARED_DTYPES)


def _shareable(t: torch.Tensor) -> bool:
    """A tensor a worker gets back exactly from its bytes, shape and dtype."""
    return (type(t) is torch.Tensor and t.device.type == "cpu" and t.layout == torch.strided and t.is_contiguous()
            and not t.requires_grad and not t.is_conj() and not t.is_neg()
            and str(t.dtype).removeprefix("torch.") in protocol.SHARED_DTYPES)


def _plain(x) -> bool:
    """A value that crosses the pipe unchanged."""
    if isinstance(x, (list, tuple)):
        return all(_plain(v) for v in x)
    return x is None or type(x) in (bool, int, float, str)
