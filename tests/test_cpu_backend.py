"""The CPU backend plugin: discovery, descriptors, host detection and timing."""
from __future__ import annotations

import os
import time

import pytest

from akg import plugins
from akg.backends.cpu import host
from akg.targets import Backend


@pytest.fixture()
def backend(tmp_path, monkeypatch):
    monkeypatch.setenv("AKG_CACHE_DIR", str(tmp_path))
    return type(plugins.get_backend("cpu"))()  # a fresh instance: nothing detected yet


def test_backend_is_discovered_through_entry_points():
    found = plugins.get_backend("cpu")
    assert isinstance(found, Backend)
    assert found.name == "cpu" and found.torch_device == "cpu" and found.available()


def test_descriptors_load_with_sourced_figures():
    specs = {s.name: s for s in plugins.get_backend("cpu").descriptors()}
    assert {"x86-64-generic", "amd-epyc-9654", "intel-xeon-8480", "amd-epyc-7763"} <= set(specs)
    for spec in specs.values():
        assert spec.backend == "cpu" and spec.compute_units > 0 and spec.memory_bandwidth_gbs > 0
        assert spec.peak("fp32") > 0 and spec.vector_width_bits in (128, 256, 512)
        assert "Source" in open(spec.source).read() or spec.name == "x86-64-generic"


def test_detect_describes_this_host_and_caches_bandwidth(backend, tmp_path):
    spec = backend.detect()
    assert spec.compute_units == len(os.sched_getaffinity(0))
    assert spec.vector_width_bits in (128, 256, 512)
    assert 0.5 < spec.memory_bandwidth_gbs < 5000
    assert spec.peak("fp32") > 0
    assert (tmp_path / "cpu" / "bandwidth.json").exists()
    # A second process-level detection reads the cached figure instead of measuring again.
    start = time.perf_counter()
    again = type(backend)().detect()
    assert again.memory_bandwidth_gbs == spec.memory_bandwidth_gbs
    assert time.perf_counter() - start < 0.5


def test_simd_width_from_cpu_flags():
    assert host.simd_width_bits({"avx512f", "avx2"}) == 512
    assert host.simd_width_bits({"avx2", "fma"}) == 256
    assert host.simd_width_bits({"sse2"}) == 128


def test_time_call_measures_wall_time(backend):
    elapsed = backend.time_call(lambda: time.sleep(0.02))
    assert 19 <= elapsed < 200
    backend.synchronize()
    backend.flush_cache()
    profile = backend.profile(lambda: sum(range(200_000)))
    assert profile["wall_ms"] > 0 and profile["cpu_ms"] >= 0



def test_the_cache_flush_reads_a_buffer_written_once(backend, monkeypatch):
    """Every page of the flush buffer is written once (an untouched page reads the kernel's one
    zero page, which stays in cache and flushes nothing); later flushes only read it."""
    from akg.targets import HardwareSpec
    small = HardwareSpec(name="cpu-test", backend="cpu", display_name="test", compute_units=1,
                         memory_bandwidth_gbs=1.0, peak_tflops=(("fp32", 0.1),), l2_bytes=1 << 20,
                         vector_width_bits=256, source="test", extra=(("llc_bytes", 1 << 20),))
    monkeypatch.setattr(backend, "detect", lambda: small)
    backend.flush_cache()
    buffer = backend._flush_buffer
    assert buffer.numel() * buffer.element_size() == 2 << 20   # twice the last-level cache
    assert bool((buffer == 1).all()), "the flush buffer was not written"
    backend.flush_cache()
    backend.flush_cache()
    assert backend._flush_buffer.data_ptr() == buffer.data_ptr() and bool((backend._flush_buffer == 1).all())


def test_the_flush_buffer_made_before_workers_fork_starts_no_thread(tmp_path):
    """The zygote makes the flush buffer its workers share; a thread started there (torch's pool)
    would leave every forked worker with a broken thread pool."""
    import subprocess
    import sys
    code = ("import dataclasses, os, torch; from akg.backends.cpu.backend import CpuBackend; from akg.backends.cpu import host; "
            "host.describe_host = lambda real=host.describe_host: dataclasses.replace(real(), llc_bytes=1 << 22); "
            "before = len(os.listdir('/proc/self/task')); b = CpuBackend(); b.worker_preload(); "
            "after = len(os.listdir('/proc/self/task')); buf = b._flush_buffer; "
            "print(before, after, buf.numel() * 4, bool((buf == 1).all()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "AKG_CACHE_DIR": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-1000:]
    before, after, size, ones = out.stdout.split()
    assert before == after, "worker_preload started a thread"
    assert int(size) == 2 << 22 and ones == "True"
