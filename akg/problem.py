"""Load a problem: a KernelBench-format file, or an nn.Module with example inputs.

A problem file defines ``Model(nn.Module)``, ``get_inputs()`` (tensors and scalars, on the CPU) and
``get_init_inputs()`` (constructor arguments). Everything wrong with one is reported as a
``ProblemError`` with a one-line message naming the problem; the CLI turns that into exit code 2.
"""
from __future__ import annotations

import hashlib
import random
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn


class ProblemError(ValueError):
    """The problem is malformed. The message is one line and names the problem."""


@dataclass
class Problem:
    name: str
    source: str                               # the file's text; candidates embed it to subclass Model
    path: Path | None
    model_cls: type
    _get_inputs: Callable[[], list]
    _get_init_inputs: Callable[[], list]
    namespace: dict = field(default_factory=dict, repr=False)

    @property
    def digest(self) -> str:
        """Identity of the problem for the store: the source text (or class name)."""
        return hashlib.sha256(self.source.encode()).hexdigest()[:16]

    def get_inputs(self) -> list:
        return list(self._get_inputs())

    def get_init_inputs(self) -> list:
        return list(self._get_init_inputs())

    def build_model(self, seed: int = 0) -> nn.Module:
        seed_everything(seed)
        return self.model_cls(*self.get_init_inputs())

    def example_inputs(self, seed: int = 0) -> list:
        seed_everything(seed)
        return self.get_inputs()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


def _fail(name: str, what: str) -> ProblemError:
    first_line = what.strip().splitlines()[0] if what.strip() else "unknown error"
    return ProblemError(f"problem {name}: {first_line}")


def load_problem(path: str | Path) -> Problem:
    """Execute a KernelBench-format file in a fresh module namespace and check its shape."""
    path = Path(path)
    name = path.stem
    if not path.is_file():
        raise ProblemError(f"problem {path}: no such file")
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise _fail(name, f"cannot read file ({e})") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        raise _fail(name, f"syntax error at line {e.lineno}: {e.msg}") from None
    module = types.ModuleType(f"akg_problem_{name}")
    module.__file__ = str(path)
    try:
        exec(code, module.__dict__)
    except Exception as e:  # the user's file failed at import time
        raise _fail(name, f"executing the file raised {type(e).__name__}: {e}") from None
    ns = module.__dict__
    model_cls = ns.get("Model")
    if not (isinstance(model_cls, type) and issubclass(model_cls, nn.Module)):
        raise _fail(name, "defines no class Model(nn.Module)")
    for fn in ("get_inputs", "get_init_inputs"):
        if not callable(ns.get(fn)):
            raise _fail(name, f"defines no function {fn}()")
    return Problem(name, source, path, model_cls, ns["get_inputs"], ns["get_init_inputs"], ns)


def from_module(module: nn.Module, inputs: list | tuple, name: str | None = None) -> Problem:
    """A problem from a live module and example inputs (the Python API)."""
    cls = type(module)
    name = name or cls.__name__
    example = list(inputs)
    try:
        import inspect
        source = inspect.getsource(inspect.getmodule(cls))
    except (TypeError, OSError):
        source = f"# module {cls.__module__}.{cls.__qualname__} (source unavailable)\n"

    def get_inputs() -> list:
        # Fresh tensors of the same shape and dtype, drawn like the examples (normal floats).
        return [_like(x) for x in example]

    problem = Problem(name, source, None, cls, get_inputs, lambda: [], {"_instance": module})
    problem.build_model = lambda seed=0: module  # the user's instance carries its own weights
    return problem


def _like(x: Any) -> Any:
    if isinstance(x, torch.Tensor):
        if x.is_floating_point():
            return torch.randn_like(x)
        return x.clone()
    return x


VALIDATION_FORWARD_SEED = 10007


def validate(problem: Problem, device: str = "cpu") -> list:
    """Run the reference twice on the same inputs, the same torch seed set before each; return its
    outputs as a flat list.

    Raises ProblemError when get_inputs/get_init_inputs raise, the model fails, an output is not
    a tensor, or two runs disagree under the same seed (a race, or state the model keeps between
    calls: nothing to verify against). A model that draws random numbers through torch (dropout,
    torch.rand) agrees with itself under the same seed, and the harness judges it (see
    akg/harness/randomness.py).

    On an accelerator ``device`` the inputs are drawn there (the device is torch's default device
    while ``get_inputs`` runs) and the model runs there: a multi-GB input is never made on the host."""
    name = problem.name
    on_device = torch.device(device).type != "cpu"
    try:
        if on_device:
            with torch.device(device):
                inputs = problem.example_inputs(0)
            inputs = [x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs]
        else:
            inputs = problem.example_inputs(0)
    except Exception as e:
        raise _fail(name, f"get_inputs() raised {type(e).__name__}: {e}") from None
    if not isinstance(inputs, list) or not inputs:
        raise _fail(name, "get_inputs() must return a non-empty list")
    try:
        model = problem.build_model(0)
        if on_device:
            model = model.to(device)
    except Exception as e:
        raise _fail(name, f"building Model(*get_init_inputs()) raised {type(e).__name__}: {e}") from None
    runs = []
    for _ in range(2):
        try:
            with torch.no_grad():
                seed_everything(VALIDATION_FORWARD_SEED)
                out = model(*[x.clone() if isinstance(x, torch.Tensor) else x for x in inputs])
        except Exception as e:
            raise _fail(name, f"Model.forward raised {type(e).__name__}: {e}") from None
        runs.append(flatten_outputs(out, name))
    for i, (a, b) in enumerate(zip(*runs)):
        if a.shape != b.shape or not torch.equal(torch.nan_to_num(a), torch.nan_to_num(b)):
            raise _fail(name, f"the reference is nondeterministic: output {i} differs between two runs on the same inputs "
                              "under the same seed (a race, or state kept between calls); it cannot be verified against")
    return runs[0]


def flatten_outputs(out: Any, name: str = "problem") -> list[torch.Tensor]:
    """Model outputs as a flat list of tensors; anything else is a ProblemError."""
    items = list(out) if isinstance(out, (tuple, list)) else [out]
    for i, t in enumerate(items):
        if not isinstance(t, torch.Tensor):
            raise _fail(name, f"output {i} of Model.forward is a {type(t).__name__}, not a tensor")
    return items
