"""The CUDA backend: device detection, hardware descriptors, synchronisation, L2 flush, event timing."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import torch

from akg.targets import HardwareSpec, load_descriptors
from akg.backends.cuda import profiler

HARDWARE_DIR = Path(__file__).parent / "hardware"


class CudaBackend:
    name = "cuda"
    torch_device = "cuda"
    # The CUDA driver maps address ranges far beyond physical memory: an RLIMIT_AS breaks it.
    limits_address_space = False
    # A standby's imports run on the host while a GPU candidate is timed on the device; it leaves
    # the device alone until told to start.
    standby_during_timing = True
    probe_copy_bytes = 1 << 30
    ray_resource = "GPU"

    def __init__(self) -> None:
        self._flush_buffer: torch.Tensor | None = None
        self._detected: HardwareSpec | None = None

    def available(self) -> bool:
        # torch for ROCm answers through torch.cuda too: those GPUs belong to the rocm backend.
        return torch.cuda.is_available() and not getattr(torch.version, "hip", None)

    def select(self, index: int) -> None:
        """Use only GPU ``index`` (counted among those visible now): this process and every worker
        it starts then see that GPU alone, as device 0. Must come before CUDA is initialised."""
        from akg.errors import AkgError
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        ids = [v.strip() for v in visible.split(",") if v.strip()] if visible is not None else None
        if ids is not None and index >= len(ids):
            raise AkgError(f"--device cuda:{index}: only {len(ids)} GPU(s) are visible (CUDA_VISIBLE_DEVICES={visible})")
        chosen = ids[index] if ids is not None else str(index)
        if torch.cuda.is_initialized():
            if chosen != visible:
                raise AkgError(f"--device cuda:{index}: CUDA was initialised before the device was chosen")
            return
        os.environ["CUDA_VISIBLE_DEVICES"] = chosen

    def descriptors(self) -> list[HardwareSpec]:
        return load_descriptors(HARDWARE_DIR)

    def detect(self) -> HardwareSpec:
        if self._detected is None:
            device_name = torch.cuda.get_device_name()
            self._detected = match_descriptor(device_name, self.descriptors()) or derived_descriptor()
        return self._detected

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def flush_cache(self) -> None:
        # Writing a buffer twice the L2 size evicts whatever the previous trial left there.
        if self._flush_buffer is None:
            l2 = self.detect().l2_bytes or torch.cuda.get_device_properties(0).L2_cache_size
            self._flush_buffer = torch.empty(max(2 * l2, 1 << 20), dtype=torch.int8, device="cuda")
        self._flush_buffer.zero_()

    def time_call(self, fn: Callable[[], Any]) -> float:
        """Milliseconds of device time from ``fn``'s first kernel to the device-wide synchronisation
        that ``fn`` ends with. No synchronisation before the start event: the caller has just
        queued the L2 flush (tens of microseconds of GPU work), so the host's launch latency
        overlaps it instead of being timed as idle GPU time, as in ``triton.testing.do_bench``.
        Host work longer than the flush still shows up as a gap, so it cannot hide a computation."""
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    def profile(self, fn: Callable[[], Any]) -> dict[str, Any]:
        # Hardware counters need Nsight Compute around a whole process: see profiler.ncu_profile.
        return {}

    def comparison_device(self) -> str:
        return "cuda" if torch.cuda.is_available() else "cpu"

    def tf32_kinds(self) -> frozenset[str]:
        # Convolutions run on TF32 by default (cudnn.allow_tf32), matmuls only when the user allowed it.
        kinds = {"conv"} if torch.backends.cudnn.allow_tf32 else set()
        if torch.backends.cuda.matmul.allow_tf32:
            kinds.add("matmul")
        return frozenset(kinds)

    def watched_namespaces(self) -> dict[str, Any]:
        spaces: dict[str, Any] = {"torch.cuda": torch.cuda}
        if hasattr(torch.cuda, "Event"):
            spaces["torch.cuda.Event"] = torch.cuda.Event
        return spaces


def match_descriptor(device_name: str, specs: list[HardwareSpec]) -> HardwareSpec | None:
    """The descriptor whose longest ``match`` substring occurs in the device name."""
    best, best_len = None, 0
    for spec in specs:
        for pattern in spec.match:
            if pattern.lower() in device_name.lower() and len(pattern) > best_len:
                best, best_len = spec, len(pattern)
    return best


def derived_descriptor(index: int = 0) -> HardwareSpec:
    """A descriptor built from what the CUDA runtime reports, for GPUs no TOML describes.
    Bandwidth and peak rates are unknown (0), so rooflines are not computed for them."""
    p = torch.cuda.get_device_properties(index)
    return HardwareSpec(
        name="cuda-" + p.name.lower().replace("nvidia", "").strip().replace(" ", "-"),
        backend="cuda", display_name=p.name, compute_units=p.multi_processor_count,
        l2_bytes=getattr(p, "L2_cache_size", 0), warp_size=getattr(p, "warp_size", 32),
        shared_mem_per_sm=getattr(p, "shared_memory_per_multiprocessor", 0),
        shared_mem_per_block=getattr(p, "shared_memory_per_block_optin", 0),
        registers_per_sm=getattr(p, "regs_per_multiprocessor", 0), max_threads_per_block=1024,
        tensor_cores=p.major >= 7, tma=p.major >= 9, compute_capability=f"{p.major}.{p.minor}",
        source="detected",
    )
