"""The ROCm backend: AMD Instinct GPUs through torch for ROCm (which names them ``cuda``). The
device API is CUDA's, so detection, events and flushing follow the CUDA backend. Not yet run on
an AMD GPU."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from akg.targets import HardwareSpec, load_descriptors

HARDWARE_DIR = Path(__file__).parent / "hardware"


class RocmBackend:
    name = "rocm"
    torch_device = "cuda"          # torch for ROCm keeps the CUDA device name
    limits_address_space = False   # the HIP runtime maps address ranges beyond physical memory
    standby_during_timing = True
    probe_copy_bytes = 1 << 30
    ray_resource = "GPU"

    def __init__(self) -> None:
        self._detected: HardwareSpec | None = None
        self._flush_buffer: torch.Tensor | None = None

    def available(self) -> bool:
        return bool(getattr(torch.version, "hip", None)) and torch.cuda.is_available()

    def descriptors(self) -> list[HardwareSpec]:
        return load_descriptors(HARDWARE_DIR)

    def detect(self) -> HardwareSpec:
        if self._detected is None:
            name = torch.cuda.get_device_name()
            found = [s for s in self.descriptors() if any(m.lower() in name.lower() for m in s.match)]
            p = torch.cuda.get_device_properties(0)
            self._detected = found[0] if found else HardwareSpec(
                name="rocm-" + name.lower().replace(" ", "-"), backend=self.name, display_name=name,
                compute_units=p.multi_processor_count, l2_bytes=getattr(p, "L2_cache_size", 0), warp_size=64,
                source="detected")
        return self._detected

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def flush_cache(self) -> None:
        # Twice the largest last-level cache (MI300X: 256 MB Infinity Cache).
        if self._flush_buffer is None:
            llc = dict(self.detect().extra).get("llc_bytes", 256 << 20)
            self._flush_buffer = torch.empty(2 * llc, dtype=torch.int8, device="cuda")
        self._flush_buffer.zero_()

    def time_call(self, fn: Callable[[], Any]) -> float:
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    def profile(self, fn: Callable[[], Any]) -> dict[str, Any]:
        return {}

    def comparison_device(self) -> str:
        return "cuda" if self.available() else "cpu"

    def tf32_kinds(self) -> frozenset[str]:
        return frozenset()   # torch for ROCm runs fp32 matmuls and convolutions in fp32 by default

    def watched_namespaces(self) -> dict[str, Any]:
        return {"torch.cuda": torch.cuda}
