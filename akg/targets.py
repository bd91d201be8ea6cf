"""What a DSL, a backend and a pass plugin must provide, and the hardware descriptor they share.

These are structural protocols: a plugin object needs the attributes and methods, not a base class.
The core talks to DSLs, backends and passes only through these, so it never names one.
"""
from __future__ import annotations

import statistics
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, runtime_checkable

from akg.ir import FusedGroup, Graph, KernelPlan, Schedule


class RenderError(Exception):
    """A template could not render a group. The coder turns it into a failed candidate."""


class BuildError(Exception):
    """A candidate's kernels did not compile. Carries the compiler's message."""


# ----------------------------------------------------------------------------------------------
# Hardware descriptors
# ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class HardwareSpec:
    """One device model, loaded from a TOML descriptor shipped by a backend plugin
    (or built from what a backend detects at run time)."""
    name: str                                   # e.g. "h100-sxm", "cpu-host"
    backend: str                                # the name of the backend plugin that runs it
    display_name: str = ""
    compute_units: int = 1                      # SMs, CPU cores, GPU cores
    memory_bandwidth_gbs: float = 0.0           # sustained DRAM/HBM bandwidth, GB/s
    peak_tflops: tuple[tuple[str, float], ...] = ()   # "fp32", "tf32", "bf16", "fp16", "fp8", "fp64"
    l2_bytes: int = 0
    vector_width_bits: int = 0                  # CPU SIMD width
    warp_size: int = 0
    shared_mem_per_sm: int = 0
    shared_mem_per_block: int = 0
    registers_per_sm: int = 0
    max_threads_per_block: int = 0
    tensor_cores: bool = False
    tma: bool = False
    compute_capability: str = ""
    match: tuple[str, ...] = ()                 # substrings of the device name that select this descriptor
    source: str = ""                            # the file it came from, or "detected"
    extra: tuple[tuple[str, Any], ...] = ()

    def peak(self, mode: str) -> float:
        """Peak TFLOP/s for a precision mode; 0.0 when unknown."""
        return dict(self.peak_tflops).get(mode, 0.0)

    def roofline_ms(self, flops: float, bytes_moved: float, mode: str = "fp32") -> float:
        t_mem = bytes_moved / (self.memory_bandwidth_gbs * 1e9) if self.memory_bandwidth_gbs else 0.0
        peak = self.peak(mode)
        t_compute = flops / (peak * 1e12) if peak else 0.0
        return max(t_mem, t_compute) * 1e3


_SCALAR_FIELDS = {f for f in HardwareSpec.__dataclass_fields__} - {"peak_tflops", "match", "extra", "source"}


def load_descriptor(path: Path) -> HardwareSpec:
    """Read one hardware descriptor TOML. Unknown keys go to ``extra`` so descriptors can carry
    facts the core does not know about yet."""
    data = tomllib.loads(Path(path).read_text())
    known = {k: v for k, v in data.items() if k in _SCALAR_FIELDS}
    extra = tuple(sorted((k, v) for k, v in data.items()
                         if k not in _SCALAR_FIELDS and k not in ("peak_tflops", "match")))
    return HardwareSpec(
        **known,
        peak_tflops=tuple(sorted(data.get("peak_tflops", {}).items())),
        match=tuple(data.get("match", ())),
        source=str(path),
        extra=extra,
    )


def load_descriptors(folder: Path) -> list[HardwareSpec]:
    return [load_descriptor(p) for p in sorted(Path(folder).glob("*.toml"))]


# ----------------------------------------------------------------------------------------------
# Plugin object protocols
# ----------------------------------------------------------------------------------------------

@runtime_checkable
class Backend(Protocol):
    name: str            # the device name users pass to --device
    torch_device: str    # the torch device string tensors go to
    # Facts the core would otherwise decide by device name:
    limits_address_space: bool    # a worker's address-space limit may be set (GPU drivers map huge ranges)
    standby_during_timing: bool   # a standby worker may go on importing while a candidate is timed
    probe_copy_bytes: int         # bytes the bench's bandwidth probe copies: far beyond any cache
    ray_resource: str | None      # the Ray resource one evaluation actor takes ("GPU"); None: one CPU

    def comparison_device(self) -> str:
        """The torch device the conductor compares outputs on (a GPU's own memory where it can,
        since float64 passes over hundreds of MB take seconds on a CPU)."""

    def tf32_kinds(self) -> frozenset[str]:
        """Node kinds ("conv", "matmul") whose fp32 work torch runs on TF32 units with its current
        settings on this backend; empty where there is no TF32."""

    def watched_namespaces(self) -> dict[str, Any]:
        """Objects whose members a candidate must not replace (the device's timers and
        synchronisation), by the name the integrity report uses."""

    def available(self) -> bool:
        """True when this machine has the device (and its toolchain)."""

    def descriptors(self) -> list[HardwareSpec]:
        """Every hardware descriptor this backend ships."""

    def detect(self) -> HardwareSpec:
        """The descriptor of the device present now (matched by name, else measured/derived)."""

    def synchronize(self) -> None:
        """Wait until all work queued on the device has finished (device-wide)."""

    def flush_cache(self) -> None:
        """Evict caches between timing trials (e.g. write a buffer larger than L2/LLC)."""

    def time_call(self, fn: Callable[[], Any]) -> float:
        """Run ``fn`` once and return its device time in ms (events on GPUs, clock + sync on CPUs)."""

    def profile(self, fn: Callable[[], Any]) -> dict[str, Any]:
        """Optional hardware counters for one call; {} where no profiler exists."""


def median_device_ms(backend: Backend, prepare: Callable[[], Callable[[], Any]], warmup: int, trials: int) -> float:
    """The median of ``trials`` timed calls after ``warmup`` untimed ones, each behind a cache flush
    and ending in a device-wide synchronisation. ``prepare`` readies one call outside the timed
    region (fresh clones of its inputs, say) and returns it."""
    times = []
    for trial in range(warmup + trials):
        call = prepare()
        backend.flush_cache()
        ms = backend.time_call(lambda: (call(), backend.synchronize()))
        if trial >= warmup:
            times.append(ms)
    return statistics.median(times)


@runtime_checkable
class DSL(Protocol):
    name: str                    # the name users pass to --dsl
    devices: tuple[str, ...]     # backend names it can run on
    families: tuple[str, ...]    # kernel families it renders (ir.FAMILIES minus "library")
    timing_meaningful_on: tuple[str, ...]  # backends where its timings mean something
    interpreter_flags: tuple[str, ...]     # environment variables that, set (not "0") in a worker,
                                           # mean its kernels ran under an interpreter

    def worker_environment(self) -> dict[str, str]:
        """Environment variables of the build caches its candidates write (name -> folder); the
        harness lets workers write there and nowhere else outside their scratch."""

    def versions(self) -> dict[str, str]:
        """Versions of its toolchain (package or compiler -> version) that change what its
        candidates compute or how fast: stored results are keyed by them."""

    def schedules(self, group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
        """The schedules worth measuring for this group on this hardware, best guess first.
        Empty when the group's family or shape is not supported."""

    def render(self, groups: list[tuple[int, FusedGroup]], device: str) -> str:
        """Python source defining one function ``_akg_g{index}`` per given group.
        Each takes the group's read values (FusedGroup.read_values order) as tensors and returns a
        tuple of its written values (FusedGroup.written_values order). Kernels are inline in the
        text; the text may only import torch, the DSL's own package and the stdlib.
        Raises RenderError naming the group and the reason."""

    def prebuild(self, source: str, device: str) -> None:
        """Compile the kernels of a full candidate source into the DSL's build cache, so a worker
        loads them without compiling. Raises BuildError with the compiler output. May be a no-op."""

    def lint(self, source: str) -> list[str]:
        """Problems with a candidate source that are visible without running it."""

    def guide(self) -> str:
        """Text for LLM prompts: how to write a ModelNew in this DSL."""

    def kernel_findings(self, source: str) -> list[str]:
        """What reading ``source`` shows is missing for its work to run in this DSL: a kernel
        defined in the language and launched from Python. Empty when both are there. Optional:
        the static screen of LLM candidates skips this question for a DSL without it."""

    def toolchain_problem(self) -> str | None:
        """None when the DSL's toolchain (compiler, package) is present; else one line saying what
        is missing and how to install it. Optional: a plugin without it counts as available."""

    # Optional: ``worker_preload(device) -> None``, work every worker would repeat before its first
    # candidate (imports, a compiler's cache key), done once in the process workers are forked
    # from. It must not touch the device: a process forked after that cannot use it.
    # Optional: ``worker_env(device) -> dict[str, str]``, environment variables worker processes on
    # ``device`` start with (e.g. a DSL that runs only in its interpreter there). Not part of the
    # protocol so that plugins without it still match.


@dataclass(frozen=True)
class Target:
    """What a run targets: a DSL on a backend's device, described by a hardware descriptor. The core
    asks it the facts that depend on the three together instead of deciding them by name."""
    dsl: DSL
    backend: Backend
    hardware: HardwareSpec

    @property
    def device(self) -> str:
        return self.backend.name

    @property
    def timing_meaningful(self) -> bool:
        """Whether timings of this DSL on this device mean anything (not under an interpreter)."""
        return self.backend.name in self.dsl.timing_meaningful_on

    def harness_settings(self, config):
        """The harness configuration for this target: where timings mean nothing (a DSL under its
        CPU interpreter) nothing is timed, and since each interpreted run is slow, correctness is
        checked on fewer (still fresh, still varied) cases."""
        if self.timing_meaningful:
            return config
        return config.replace(time=False, measure_compile=False, seeds=config.seeds[:1],
                              distributions=("problem", "uniform"))

    def versions(self) -> dict[str, str]:
        """Everything a stored result of this target depends on besides the problem and the
        candidate: torch, the DSL's toolchain, the device model."""
        import torch
        return {"torch": torch.__version__, "dsl": self.dsl.name, **self.dsl.versions(),
                "backend": self.backend.name, "hardware": self.hardware.name}


@runtime_checkable
class Pass(Protocol):
    name: str
    stage: str   # "graph" (Graph -> Graph) | "plan" (Graph -> list[KernelPlan]) | "check" (source -> problems)
    order: int   # passes of one stage run in ascending order

    def run(self, subject: Any, context: "PassContext") -> Any:
        ...


@dataclass
class PassContext:
    dsl: DSL | None = None
    hardware: HardwareSpec | None = None
    options: dict[str, Any] = field(default_factory=dict)


def is_graph_pass(p: Pass) -> bool:
    return p.stage == "graph"


def run_graph_passes(graph: Graph, passes: list[Pass], context: PassContext) -> Graph:
    for p in sorted((p for p in passes if p.stage == "graph"), key=lambda p: p.order):
        graph = p.run(graph, context)
        graph.verify()
    return graph


def run_plan_passes(graph: Graph, passes: list[Pass], context: PassContext) -> list[KernelPlan]:
    plans: list[KernelPlan] = []
    for p in sorted((p for p in passes if p.stage == "plan"), key=lambda p: p.order):
        for plan in p.run(graph, context):
            plan.verify()
            plans.append(plan)
    return plans
