"""The torchexpr plugin object."""
from pathlib import Path

from . import schedules
from .render import render_groups


class TorchExprDSL:
    name = "torchexpr"
    devices = ("cpu", "cuda")
    families = ("pointwise",)
    timing_meaningful_on = ("cpu", "cuda")
    interpreter_flags = ()

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

    def worker_environment(self):
        return {}  # nothing is compiled: no cache to write

    def versions(self):
        return {}  # torch's version is part of every target's versions already
