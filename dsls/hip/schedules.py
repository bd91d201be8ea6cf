"""HIP schedules: CUDA-C's typed schedules, with block sizes in whole 64-wide wavefronts."""
from __future__ import annotations

from akg.dsls.cuda_c import schedules as cuda
from akg.ir import FusedGroup, Schedule
from akg.targets import HardwareSpec

PointwiseSchedule, ReductionSchedule, ScanSchedule = cuda.PointwiseSchedule, cuda.ReductionSchedule, cuda.ScanSchedule


def schedules(group: FusedGroup, hardware: HardwareSpec) -> list[Schedule]:
    # A block of 32 threads would be half a wavefront: shuffles and block reductions assume whole ones.
    return [s.to_schedule() for s in cuda.for_kernel(group.kernel, hardware) if s.threads % 64 == 0]
