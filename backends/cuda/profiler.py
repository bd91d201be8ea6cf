"""Nsight Compute profiling for --profile: runs a script under ``ncu`` and reads its CSV metrics."""
from __future__ import annotations

import csv
import io
import shutil
import subprocess
import sys

# Achieved DRAM throughput, SM throughput and duration: enough to say which roof a kernel hits.
DEFAULT_METRICS = (
    "gpu__time_duration.sum",
    "dram__throughput.avg.pct_of_peak_sustained_elapsed",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed",
    "dram__bytes.sum",
)


def ncu_path() -> str | None:
    return shutil.which("ncu")


def ncu_profile(script: str, args: tuple[str, ...] = (), metrics: tuple[str, ...] = DEFAULT_METRICS,
                kernel_regex: str = "_akg_", timeout_s: float = 300.0) -> dict[str, dict[str, str]]:
    """Per-kernel metrics of the kernels matching ``kernel_regex`` in ``python script args``.
    Returns {} when ncu is not installed; raises RuntimeError naming ncu's complaint on failure."""
    ncu = ncu_path()
    if ncu is None:
        return {}
    cmd = [ncu, "--csv", "--clock-control", "none", "--kernel-name", f"regex:{kernel_regex}",
           "--metrics", ",".join(metrics), sys.executable, script, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        raise RuntimeError(f"ncu failed ({done.returncode}): {done.stderr.strip()[-300:]}")
    return parse_ncu_csv(done.stdout)


def parse_ncu_csv(text: str) -> dict[str, dict[str, str]]:
    """{kernel name: {metric: value}} from ncu's --csv output (its header line starts with "ID")."""
    start = text.find('"ID"')
    if start < 0:
        return {}
    found: dict[str, dict[str, str]] = {}
    for row in csv.DictReader(io.StringIO(text[start:])):
        found.setdefault(row["Kernel Name"], {})[row["Metric Name"]] = row["Metric Value"]
    return found
