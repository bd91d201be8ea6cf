"""The MPS backend: Apple-silicon GPUs through torch's ``mps`` device. Descriptors for M-series
chips; detection by the chip name macOS reports. Not yet run on an Apple GPU."""
from __future__ import annotations

import platform
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import torch

from akg.targets import HardwareSpec, load_descriptors

HARDWARE_DIR = Path(__file__).parent / "hardware"


class MpsBackend:
    name = "mps"
    torch_device = "mps"
    # Unified memory: the Metal driver maps more address space than an RLIMIT_AS would allow.
    limits_address_space = False
    # CPU and GPU share the chip's memory system and power budget: a standby starting up while a
    # candidate is timed would disturb the timing, so it finishes starting first.
    standby_during_timing = False
    probe_copy_bytes = 1 << 28
    ray_resource = None  # Ray has no Apple GPU resource

    def __init__(self) -> None:
        self._detected: HardwareSpec | None = None
        self._flush_buffer: torch.Tensor | None = None

    def available(self) -> bool:
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()

    def descriptors(self) -> list[HardwareSpec]:
        return load_descriptors(HARDWARE_DIR)

    def detect(self) -> HardwareSpec:
        if self._detected is None:
            chip = chip_name()
            match = match_descriptor(chip, self.descriptors())
            self._detected = match or HardwareSpec(name="apple-gpu", backend=self.name, display_name=chip or "Apple GPU",
                                                   source="detected")
        return self._detected

    def synchronize(self) -> None:
        torch.mps.synchronize()

    def flush_cache(self) -> None:
        # Twice the system-level cache of the largest M-series chips (96 MB on Max parts).
        if self._flush_buffer is None:
            self._flush_buffer = torch.empty(192 << 20, dtype=torch.int8, device="mps")
        self._flush_buffer.zero_()

    def time_call(self, fn: Callable[[], Any]) -> float:
        # fn ends with a device-wide synchronisation, so host time covers the GPU work.
        start = time.perf_counter_ns()
        fn()
        return (time.perf_counter_ns() - start) / 1e6

    def profile(self, fn: Callable[[], Any]) -> dict[str, Any]:
        return {}

    def comparison_device(self) -> str:
        return "cpu"   # MPS has no float64 for the comparisons' second look

    def tf32_kinds(self) -> frozenset[str]:
        return frozenset()

    def watched_namespaces(self) -> dict[str, Any]:
        return {"torch.mps": torch.mps} if hasattr(torch, "mps") else {}


def chip_name() -> str:
    if platform.system() != "Darwin":
        return ""
    try:
        return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                              timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def match_descriptor(chip: str, specs: list[HardwareSpec]) -> HardwareSpec | None:
    """The descriptor whose longest ``match`` string occurs in the chip name ("Apple M2 Max")."""
    best, best_len = None, 0
    for spec in specs:
        for pattern in spec.match:
            if pattern.lower() in chip.lower() and len(pattern) > best_len:
                best, best_len = spec, len(pattern)
    return best
