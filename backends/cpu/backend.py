"""The CPU backend: host detection, descriptors, cache flushing and wall-clock timing."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from akg.targets import HardwareSpec, load_descriptors

from . import host

HARDWARE_DIR = Path(__file__).parent / "hardware"


class CpuBackend:
    name = "cpu"
    torch_device = "cpu"
    limits_address_space = True
    # A standby's imports would compete for the cores being timed: it finishes starting first.
    standby_during_timing = False
    probe_copy_bytes = 1 << 26
    ray_resource = None

    def __init__(self) -> None:
        self._detected: HardwareSpec | None = None
        self._flush_buffer = None

    def available(self) -> bool:
        return True

    def descriptors(self) -> list[HardwareSpec]:
        return load_descriptors(HARDWARE_DIR)

    def detect(self) -> HardwareSpec:
        """This host as seen by this process: a container may own fewer cores than the socket has,
        so the spec is derived from what the process can use rather than matched to a catalogue."""
        if self._detected is None:
            cpu = host.describe_host()
            self._detected = HardwareSpec(
                name="cpu-host",
                backend=self.name,
                display_name=f"{cpu.model} ({cpu.cores} cores)",
                compute_units=cpu.cores,
                memory_bandwidth_gbs=round(host.memory_bandwidth_gbs(cpu), 1),
                peak_tflops=(("fp32", round(host.peak_tflops(cpu), 4)),
                             ("fp64", round(host.peak_tflops(cpu) / 2, 4))),
                l2_bytes=cpu.l2_bytes,
                vector_width_bits=cpu.vector_width_bits,
                source="detected",
                extra=(("clock_ghz", cpu.clock_ghz), ("llc_bytes", cpu.llc_bytes), ("model", cpu.model)),
            )
        return self._detected

    def synchronize(self) -> None:
        """CPU kernels in akg run synchronously on the calling thread's pool: nothing is queued."""

    def flush_cache(self) -> None:
        import torch

        if self._flush_buffer is None:
            llc = dict(self.detect().extra).get("llc_bytes", 32 << 20)
            # Twice the last-level cache so that no line of the previous trial survives. Written
            # once here, so every page is backed by its own memory (untouched pages all read the
            # one shared zero page, which would stay in cache).
            self._flush_buffer = torch.ones(2 * llc // 4, dtype=torch.float32)
            return   # writing it flushed the cache already
        # Reading it evicts as writing would, at about half the memory traffic (no write-back),
        # and leaves no dirty lines whose write-back the next timed call would pay for.
        self._flush_buffer.sum()

    def worker_preload(self) -> None:
        """In the process workers are forked from: the flush buffer, written once there, so each
        worker reads the same pages (copy-on-write, never written again) instead of allocating and
        writing its own 2x LLC. Filled through numpy, on one thread: a torch thread pool started
        before a fork would be unusable in the children (torch's allocator, unlike numpy's, maps
        such a buffer with huge pages: several times fewer page faults)."""
        import torch

        if self._flush_buffer is None:
            buffer = torch.empty(2 * host.describe_host().llc_bytes // 4, dtype=torch.float32)
            buffer.numpy().fill(1.0)
            self._flush_buffer = buffer

    def time_call(self, fn: Callable[[], Any]) -> float:
        start = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - start) / 1e6

    def profile(self, fn: Callable[[], Any]) -> dict[str, Any]:
        """Wall time against CPU time of all threads: their ratio shows how well a kernel spreads
        over the cores (1.0 = one busy core)."""
        wall_start, cpu_start = time.perf_counter_ns(), time.process_time_ns()
        fn()
        wall_ns = time.perf_counter_ns() - wall_start
        cpu_ns = time.process_time_ns() - cpu_start
        return {"wall_ms": wall_ns / 1e6, "cpu_ms": cpu_ns / 1e6,
                "busy_cores": cpu_ns / wall_ns if wall_ns else 0.0}

    def comparison_device(self) -> str:
        return "cpu"

    def tf32_kinds(self) -> frozenset[str]:
        return frozenset()

    def watched_namespaces(self) -> dict[str, Any]:
        return {}
