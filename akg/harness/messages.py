"""The messages between the conductor and a worker, as frozen dataclasses.

Each message has ``to_wire()`` (a dict of plain values and tensors, what ``protocol`` frames) and
``from_wire(d)``, which checks every field's type and refuses unknown or missing keys: a reply
comes from a process that ran untrusted code, so a malformed one must surface as a
``protocol.ProtocolError`` (the worker is then treated as crashed), never as a KeyError deep in
the judging code. The ``op`` key names the message; a worker's failed request is ``Failure``.

Tensor-valued fields hold what ``protocol.resolve`` made of the handles on the wire (a mapped
tensor) or None; shared inputs stay an opaque handle structure that only the worker resolves.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch

from akg.harness.compare import OutputInfo
from akg.harness.protocol import ProtocolError


# ---- field converters: each checks one wire value and returns the typed one ---------------------

def _int(v):
    if type(v) is not int:
        raise ProtocolError(f"expected an integer, got {type(v).__name__}")
    return v


def _float(v):
    if type(v) not in (int, float):
        raise ProtocolError(f"expected a number, got {type(v).__name__}")
    return float(v)


def _bool(v):
    if type(v) is not bool:
        raise ProtocolError(f"expected a boolean, got {type(v).__name__}")
    return v


def _str(v):
    if type(v) is not str:
        raise ProtocolError(f"expected a string, got {type(v).__name__}")
    return v


def _tensor_or_none(v):
    if v is not None and type(v) is not torch.Tensor:
        raise ProtocolError(f"expected a tensor, got {type(v).__name__}")
    return v


def _any(v):
    return v


def _optional(conv: Callable) -> Callable:
    return lambda v: None if v is None else conv(v)


def _tuple_of(conv: Callable) -> Callable:
    def convert(v):
        if not isinstance(v, (list, tuple)):
            raise ProtocolError(f"expected a list, got {type(v).__name__}")
        return tuple(conv(x) for x in v)
    return convert


def _wire(conv: Callable, default: Any = dataclasses.MISSING):
    """A message field: ``conv`` checks its wire value."""
    if default is dataclasses.MISSING:
        return field(metadata={"wire": conv})
    return field(default=default, metadata={"wire": conv})


def _to_plain(v):
    """What a field's value is on the wire: output descriptions become dicts; everything else
    (tuples included: ``torch.load(weights_only=True)`` reads them back) stays as it is."""
    if isinstance(v, OutputInfo):
        return v.to_wire()
    if isinstance(v, tuple) and any(isinstance(x, OutputInfo) for x in v):
        return [_to_plain(x) for x in v]
    return v


class Message:
    OP: ClassVar[str]

    def to_wire(self) -> dict:
        return {"op": self.OP, **{f.name: _to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}}

    @classmethod
    def from_wire(cls, d: dict):
        if not isinstance(d, dict) or d.get("op") != cls.OP:
            raise ProtocolError(f"expected a {cls.OP!r} message, got {d.get('op') if isinstance(d, dict) else d!r}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = set(d) - set(fields) - {"op", "passed_fds"}
        if unknown:
            raise ProtocolError(f"{cls.OP!r} message has unknown field(s) {sorted(unknown)[:3]}")
        values = {}
        for name, f in fields.items():
            if name not in d:
                if f.default is dataclasses.MISSING:
                    raise ProtocolError(f"{cls.OP!r} message lacks {name!r}")
                continue
            try:
                values[name] = f.metadata["wire"](d[name])
            except ProtocolError as e:
                raise ProtocolError(f"{cls.OP!r} message field {name!r}: {e}") from None
        return cls(**values)


# ---- conductor to worker ------------------------------------------------------------------------

@dataclass(frozen=True)
class Start(Message):
    """Set up the device now (a standby waits for this, see ``pool``)."""
    OP: ClassVar[str] = "start"


@dataclass(frozen=True)
class Exit(Message):
    OP: ClassVar[str] = "exit"


@dataclass(frozen=True)
class Share(Message):
    """The conductor's answer to the probe: whether large tensors go in sealed files. No reply."""
    OP: ClassVar[str] = "share"
    enabled: bool = _wire(_bool)


@dataclass(frozen=True)
class Load(Message):
    OP: ClassVar[str] = "load"
    problem_path: str = _wire(_str)
    source: str = _wire(_str)
    candidate_id: str = _wire(_str)
    policy: str = _wire(_str)
    param_seed: int = _wire(_int)


@dataclass(frozen=True)
class RunCase(Message):
    """One correctness case: two passes over the same inputs, memory pre-filled differently.
    ``forward_seed`` is set as torch's seed right before each forward (reference and candidate
    alike), so a model that draws random numbers through the framework draws the same ones.
    ``outputs_to``: per pass, buffers on the device the conductor owns, to copy outputs into."""
    OP: ClassVar[str] = "run"
    seed: int = _wire(_int)
    distribution: str = _wire(_str)
    inputs: Any = _wire(_any)                 # Reference.shared_inputs, or None
    output_nbytes: tuple[int, ...] = _wire(_tuple_of(_int))
    async_delay_s: float = _wire(_float)
    forward_seed: int = _wire(_int)
    outputs_to: Any = _wire(_any, None)
    # record the framework random draws of the first pass (only where the reference draws: the
    # recording is a dispatch mode, which some compiled candidates run differently under)
    record_draws: bool = _wire(_bool, False)


@dataclass(frozen=True)
class Sample(Message):
    """The candidate's outputs on one case's inputs under several forward seeds (the statistical
    check of a candidate that draws its own random numbers)."""
    OP: ClassVar[str] = "sample"
    seed: int = _wire(_int)
    distribution: str = _wire(_str)
    inputs: Any = _wire(_any)
    forward_seeds: tuple[int, ...] = _wire(_tuple_of(_int))


@dataclass(frozen=True)
class Time(Message):
    OP: ClassVar[str] = "time"
    seeds: tuple[int, ...] = _wire(_tuple_of(_int))
    warmup: int = _wire(_int)
    trials: int = _wire(_int)
    inputs: Any = _wire(_any)                 # per seed: Reference.shared_inputs, or None
    # per seed: the torch seed set before each call on its inputs (models that draw), or None
    forward_seeds: tuple[int, ...] | None = _wire(_optional(_tuple_of(_int)), None)
    outputs_to: Any = _wire(_any, None)


@dataclass(frozen=True)
class Baselines(Message):
    OP: ClassVar[str] = "baselines"
    problem_path: str = _wire(_str)
    param_seed: int = _wire(_int)
    seed: int = _wire(_int)
    warmup: int = _wire(_int)
    trials: int = _wire(_int)
    compile: bool = _wire(_bool)


@dataclass(frozen=True)
class CompileBaseline(Message):
    """Compile the reference with torch.compile and run it once (the cold codegen, CPU work); the
    worker keeps the compiled model and its inputs for ``TimeCompiled``."""
    OP: ClassVar[str] = "compile_baseline"
    problem_path: str = _wire(_str)
    param_seed: int = _wire(_int)
    seed: int = _wire(_int)


@dataclass(frozen=True)
class TimeCompiled(Message):
    """Time the model ``CompileBaseline`` compiled (sent when the device is otherwise quiet)."""
    OP: ClassVar[str] = "time_compiled"
    warmup: int = _wire(_int)
    trials: int = _wire(_int)


REQUESTS = {m.OP: m for m in (Start, Exit, Share, Load, RunCase, Sample, Time, Baselines, CompileBaseline,
                              TimeCompiled)}


def request_from_wire(d: dict) -> Message:
    """Worker side: the typed request (the conductor is trusted, but a typo is still a clear error)."""
    kind = REQUESTS.get(d.get("op") if isinstance(d, dict) else None)
    if kind is None:
        raise ProtocolError(f"unknown request {d.get('op') if isinstance(d, dict) else d!r}")
    return kind.from_wire(d)


# ---- worker to conductor ------------------------------------------------------------------------

@dataclass(frozen=True)
class Hello(Message):
    OP: ClassVar[str] = "ready"
    pid: int = _wire(_int)
    network_isolated: bool = _wire(_bool)
    probe: Any = _wire(_any, None)            # a sealed-file handle, checked by protocol.probe_works


@dataclass(frozen=True)
class Started(Message):
    OP: ClassVar[str] = "started"


@dataclass(frozen=True)
class Failure(Message):
    """A request the worker could not complete (the candidate raised, a load failed)."""
    OP: ClassVar[str] = "failure"
    error: str = _wire(_str)
    trace: str = _wire(_str, "")
    integrity: tuple[str, ...] = _wire(_tuple_of(_str), ())


@dataclass(frozen=True)
class Loaded(Message):
    OP: ClassVar[str] = "loaded"
    declared_ops: tuple[str, ...] = _wire(_tuple_of(_str))
    integrity: tuple[str, ...] = _wire(_tuple_of(_str))


def _infos(v):
    if not isinstance(v, (list, tuple)):
        raise ProtocolError("infos is not a list")
    try:
        return tuple(OutputInfo.from_wire(d) for d in v)
    except (KeyError, TypeError, ValueError):
        raise ProtocolError("malformed output description") from None


def _outputs(v):
    return _tuple_of(_tensor_or_none)(v)


@dataclass(frozen=True)
class CaseResult(Message):
    """What one correctness case observed; ``outputs`` holds one tuple per pass. An output copied
    into a conductor buffer (``RunCase.outputs_to``) arrives as None with ``written`` True."""
    OP: ClassVar[str] = "case"
    infos: tuple = _wire(_infos)
    outputs: tuple[tuple[torch.Tensor | None, ...], ...] = _wire(_tuple_of(_outputs))
    mutated: tuple[int, ...] = _wire(_tuple_of(_int))
    aliases_input: tuple[tuple[int, ...], ...] = _wire(_tuple_of(_tuple_of(_int)))
    aliases_earlier: bool = _wire(_bool)
    late_writes: bool = _wire(_bool)
    new_threads: int = _wire(_int)
    violations: tuple[str, ...] = _wire(_tuple_of(_str))
    integrity: tuple[str, ...] = _wire(_tuple_of(_str))
    random_draws: tuple[str, ...] = _wire(_tuple_of(_str), ())   # digests of framework random draws
    written: tuple[tuple[bool, ...], ...] = _wire(_tuple_of(_tuple_of(_bool)), ())
    peak_bytes: int = _wire(_int, 0)

    def __post_init__(self) -> None:
        n = len(self.infos)
        if (len(self.outputs) != 2 or len(self.aliases_input) != n or any(len(p) != n for p in self.outputs)
                or (self.written and (len(self.written) != 2 or any(len(w) != n for w in self.written)))):
            raise ProtocolError("'case' message: two passes of one output (and one alias list) per described output")


@dataclass(frozen=True)
class Samples(Message):
    OP: ClassVar[str] = "samples"
    outputs: tuple[tuple[torch.Tensor | None, ...], ...] = _wire(_tuple_of(_outputs))
    integrity: tuple[str, ...] = _wire(_tuple_of(_str))


@dataclass(frozen=True)
class Timed(Message):
    OP: ClassVar[str] = "timed"
    ref_ms: tuple[float, ...] = _wire(_tuple_of(_float))
    cand_ms: tuple[float, ...] = _wire(_tuple_of(_float))
    last_seed: int = _wire(_int)
    last_outputs: tuple[torch.Tensor | None, ...] = _wire(_outputs)
    integrity: tuple[str, ...] = _wire(_tuple_of(_str))
    interpreted: bool = _wire(_bool, False)
    written: tuple[bool, ...] = _wire(_tuple_of(_bool), ())
    peak_bytes: int = _wire(_int, 0)

    def __post_init__(self) -> None:
        if not self.cand_ms or not self.ref_ms:
            raise ProtocolError("'timed' message without times")
        if self.written and len(self.written) != len(self.last_outputs):
            raise ProtocolError("'timed' message: one 'written' flag per output")


@dataclass(frozen=True)
class Measured(Message):
    """The reference's own times (baselines)."""
    OP: ClassVar[str] = "measured"
    eager_ms: float = _wire(_float)
    compile_ms: float | None = _wire(_optional(_float), None)


@dataclass(frozen=True)
class Compiled(Message):
    """The torch.compile baseline: ``compile_s`` the first call took (codegen included), or
    ``compile_ms`` the compiled model's median time once timed."""
    OP: ClassVar[str] = "compiled"
    compile_s: float = _wire(_float)
    compile_ms: float | None = _wire(_optional(_float), None)


def reply_from_wire(d: dict, expected: type) -> Message:
    """Conductor side: the worker's reply as ``expected`` or a ``Failure``; anything else is a
    ``ProtocolError``."""
    if isinstance(d, dict) and d.get("op") == Failure.OP:
        return Failure.from_wire(d)
    return expected.from_wire(d)
