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


# Fused multiply-add units per core. Server and desktop x86 cores since Haswell/Zen 2 have two
# (a few Xeon SKUs have one); counting two keeps the compute floor a true lower bound.
FMA_UNITS = 2
# Bump when the measurement method changes, so figures cached by an older method are measured again.
_METHOD = "v2"
_MAX_TENSOR_BYTES = 1 << 30   # enough to stream from DRAM; more would only cost memory and time


def peak_fp32_tflops(host: HostCpu) -> float:
    """cores x clock x fp32 lanes x FMA units x 2 (a fused multiply-add is two FLOPs)."""
    lanes = host.vector_width_bits // 32
    return host.cores * host.clock_ghz * 1e9 * lanes * FMA_UNITS * 2 / 1e12


def measure_copy_bandwidth_gbs(llc_bytes: int, repeats: int = 7) -> float:
    """The highest DRAM rate a kernel can reach, as bytes counted the way the roofline counts them
    (each tensor read or written once): the best of a copy (read + write) and a read-only sum.
    A read-mostly kernel streams faster than a copy, which also pays for write-allocate; a floor
    from the copy rate alone is then no floor (kernels beat it). Best of several runs, as on a
    shared machine any single run may be slowed, never sped up."""
    import torch

    # Four times the last-level cache, so the data streams from DRAM rather than from cache.
    numel = min(max(4 * llc_bytes, 64 << 20), _MAX_TENSOR_BYTES) // 4
    src = torch.ones(numel, dtype=torch.float32)
    dst = torch.empty_like(src)
    dst.copy_(src)  # first touch: page faults are not bandwidth
    best_copy = best_read = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        dst.copy_(src)
        best_copy = min(best_copy, (time.perf_counter_ns() - start) / 1e9)
        start = time.perf_counter_ns()
        src.sum()
        best_read = min(best_read, (time.perf_counter_ns() - start) / 1e9)
    return max(2 * src.nbytes / best_copy, src.nbytes / best_read) / 1e9


def measure_peak_fp32_tflops(repeats: int = 3) -> float:
    """The fp32 rate of a large matrix product (the library's best kernel): a lower bound of the peak."""
    import torch

    n = 1024
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter_ns()
        torch.mm(a, b)
        best = min(best, (time.perf_counter_ns() - start) / 1e9)
    return 2 * n ** 3 / best / 1e12


REMEASURE_AFTER_S = 3600.0    # a cached figure older than this is measured again, keeping the higher


def _cached(host: HostCpu, what: str, measure) -> float:
    """The highest figure measured for (method, quantity, model, cores), cached under the akg cache
    dir. A machine busy with other work only ever measures low, and a figure measured low makes the
    floor too high, so a new measurement (after an hour) can only raise the cached one."""
    key = f"{_METHOD}|{what}|{host.model}|{host.cores}"
    path = cache_dir() / "cpu" / "bandwidth.json"
    try:
        cached = json.loads(path.read_text())
    except (OSError, ValueError):
        cached = {}
    entry = cached.get(key)
    if isinstance(entry, dict) and time.time() - float(entry.get("at", 0)) < REMEASURE_AFTER_S:
        return float(entry["value"])
    previous = float(entry["value"]) if isinstance(entry, dict) else 0.0
    value = max(previous, measure())
    cached[key] = {"value": value, "at": time.time()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cached, indent=1))
    os.replace(tmp, path)  # atomic: concurrent processes never see a half-written file
    return value


def memory_bandwidth_gbs(host: HostCpu) -> float:
    return _cached(host, "bandwidth_gbs", lambda: measure_copy_bandwidth_gbs(host.llc_bytes))


def peak_tflops(host: HostCpu) -> float:
    """The larger of the datasheet formula and what a matrix product reaches on this host: the
    floor must stay below anything a kernel can do, even where the clock or units are misread."""
    return max(peak_fp32_tflops(host), _cached(host, "matmul_tflops", measure_peak_fp32_tflops))
