"""The torchexpr plugin object."""
from pathlib import Path

from . import schedules
from .render import render_groups


class TorchExprDSL:
    name = "torchexpr"
    devices = ("cpu", "cuda")
    families = ("pointwise",)
    timing_meaningful_on = ("cpu", "cuda")

    def schedules(self, group, hardware):
        return schedules.schedules(group, hardware)

    def render(self, groups, device):
        return render_groups(groups, device)

    def prebuild(self, source, device):
        return None

    def lint(self, source):
        return [] if "ModelNew" in source else ["no ModelNew defined"]

    def guide(self):
        return (Path(__file__).parent / "guide.md").read_text()
