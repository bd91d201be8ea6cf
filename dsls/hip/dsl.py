"""The hip DSL: HIP kernels for AMD GPUs (MI300X), compiled by hiprtc at run time. Rendered with
the CUDA-C templates in the HIP dialect. Not yet run on an AMD GPU: its tests syntax-check the
rendered kernels with nvcc through a shim header."""
from __future__ import annotations

import os
from pathlib import Path

from akg.dsls.cuda_c.dsl import SOURCE_PATTERN, CudaCDSL, kernel_findings
from akg.ir import FusedGroup, Schedule
from akg.targets import BuildError, HardwareSpec

from . import schedules   # runtime imports torch: imported where used, so listing plugins stays light
from .render import render_groups

GUIDE = Path(__file__).parent / "guide.md"


class HipDSL:
    name = "hip"
    devices = ("rocm",)
    families = ("pointwise", "reduction", "scan")
    timing_meaningful_on = ("rocm",)
    interpreter_flags = ()

    def schedules(self, group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
        return schedules.schedules(group, hardware) if group.family in self.families else []

    def render(self, groups: list[tuple[int, FusedGroup]], device: str) -> str:
        return render_groups(groups, device)

    def prebuild(self, source: str, device: str) -> None:
        import torch
        if not (torch.cuda.is_available() and torch.version.hip):
            return
        from . import runtime
        for text in SOURCE_PATTERN.findall(source):
            try:
                runtime.akg_build(text, runtime.akg_arch())
            except runtime.AkgHipError as error:
                raise BuildError(str(error)) from None

    def lint(self, source: str) -> list[str]:
        return CudaCDSL().lint(source)

    def guide(self) -> str:
        return GUIDE.read_text()

    def kernel_findings(self, source: str) -> list[str]:
        return kernel_findings(source, "HIP")

    def toolchain_problem(self) -> str | None:
        from . import runtime
        try:
            runtime.akg_hiprtc()
        except runtime.AkgHipError:
            return "libhiprtc is not installed: install torch for ROCm"
        return None

    def worker_environment(self) -> dict[str, str]:
        home_cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        return {"AKG_CACHE_DIR": os.environ.get("AKG_CACHE_DIR", str(home_cache / "akg"))}

    def versions(self) -> dict[str, str]:
        import torch
        return {"hip": str(torch.version.hip or "none")}
