"""Facts about the CPU this process runs on: what Linux reports, plus one measured figure.

Memory bandwidth cannot be read from the system, so it is measured once with a large tensor copy
and cached per host model and core count (the measurement takes about a second).
"""
from __future__ import annotations

import json
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path

_SYS_CPU = Path("/sys/devices/system/cpu")
_DEFAULT_CLOCK_GHZ = 2.5      # used when neither cpufreq nor /proc/cpuinfo gives a clock
_DEFAULT_LLC_BYTES = 32 << 20


@dataclass(frozen=True)
class HostCpu:
    model: str
    cores: int                 # cores this process may run on (affinity), not the whole socket
    clock_ghz: float
    vector_width_bits: int
    l2_bytes: int
    llc_bytes: int


def cache_dir() -> Path:
    """akg's cache root: $AKG_CACHE_DIR, else ~/.cache/akg."""
    return Path(os.environ.get("AKG_CACHE_DIR") or Path.home() / ".cache" / "akg")


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpuinfo_field(text: str, key: str) -> str:
    match = re.search(rf"^{key}\s*:\s*(.*)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def simd_width_bits(cpuinfo_flags: set[str]) -> int:
    if "avx512f" in cpuinfo_flags:
        return 512
    if "avx2" in cpuinfo_flags or "avx" in cpuinfo_flags:
        return 256
    return 128  # SSE2 (every x86-64) and NEON both have 128-bit registers


def _clock_ghz(cpuinfo: str) -> float:
    # cpufreq's maximum is the rated clock; /proc/cpuinfo shows the current one, which may be lower.
    max_freq = _SYS_CPU / "cpu0" / "cpufreq" / "cpuinfo_max_freq"
    try:
        return int(max_freq.read_text()) / 1e6
    except (OSError, ValueError):
        pass
    mhz = _cpuinfo_field(cpuinfo, "cpu MHz")
    try:
        return float(mhz) / 1e3
    except ValueError:
        return _DEFAULT_CLOCK_GHZ


def _parse_cache_size(text: str) -> int:
    match = re.fullmatch(r"(\d+)([KMG]?)", text.strip())
    if not match:
        return 0
    scale = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[match.group(2)]
    return int(match.group(1)) * scale


def _cache_sizes() -> dict[int, int]:
    """Unified/data cache size in bytes per level, as seen from cpu0."""
    sizes: dict[int, int] = {}
    for index in sorted((_SYS_CPU / "cpu0" / "cache").glob("index*")):
        try:
            if (index / "type").read_text().strip() == "Instruction":
                continue
            sizes[int((index / "level").read_text())] = _parse_cache_size((index / "size").read_text())
        except (OSError, ValueError):
            continue
    return sizes


def describe_host() -> HostCpu:
    info = _cpuinfo()
    flags = set(_cpuinfo_field(info, "flags").split())
    caches = _cache_sizes()
    llc = caches[max(caches)] if caches else _DEFAULT_LLC_BYTES
    return HostCpu(
        model=_cpuinfo_field(info, "model name") or platform.processor() or "unknown cpu",
        cores=available_cores(),
        clock_ghz=_clock_ghz(info),
        vector_width_bits=simd_width_bits(flags),
        l2_bytes=caches.get(2, 0),
        llc_bytes=llc,
    )


def peak_fp32_tflops(host: HostCpu) -> float:
    """cores x clock x fp32 lanes x 2 (one fused multiply-add per lane per cycle)."""
    lanes = host.vector_width_bits // 32
    return host.cores * host.clock_ghz * 1e9 * lanes * 2 / 1e12


def measure_copy_bandwidth_gbs(llc_bytes: int) -> float:
    """Best of a few large tensor copies; each moves its bytes twice (read + write)."""
    import torch

    # Four times the last-level cache, so the copy streams from DRAM rather than from cache.
    numel = max(4 * llc_bytes, 64 << 20) // 4
    src = torch.ones(numel, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch: page faults are not bandwidth
    best_s = float("inf")
    for _ in range(5):
        start = time.perf_counter_ns()
        dst.copy_(src)
        best_s = min(best_s, (time.perf_counter_ns() - start) / 1e9)
    return 2 * src.nbytes / best_s / 1e9


def memory_bandwidth_gbs(host: HostCpu) -> float:
    """Measured once per (model, cores) and cached under the akg cache dir."""
    key = f"{host.model}|{host.cores}"
    path = cache_dir() / "cpu" / "bandwidth.json"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        return float(cached[key])
    measured = measure_copy_bandwidth_gbs(host.llc_bytes)
    cached[key] = measured
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cached, indent=1))
    os.replace(tmp, path)  # atomic: concurrent processes never see a half-written file
    return measured
