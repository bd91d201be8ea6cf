"""torchexpr has no knobs: one empty schedule per pointwise group."""
from dataclasses import dataclass

from akg.ir import Schedule


@dataclass(frozen=True)
class TorchExprSchedule:
    """Nothing to tune: torch picks its own kernels. Kept so the plugin has the usual shape."""

    def to_schedule(self) -> Schedule:
        return Schedule()


def schedules(group, hardware) -> list[Schedule]:
    return [TorchExprSchedule().to_schedule()] if group.family == "pointwise" else []
