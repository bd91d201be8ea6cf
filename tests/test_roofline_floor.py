"""The roofline floor is a floor: the CPU figures behind it are upper bounds of what the host can
do, and a time below it is flagged suspect in the verdict (far below: rejected)."""
import json

from akg.harness.evaluation import floor_check
from akg.ir import Verdict
from akg.backends.cpu import host


def test_below_the_floor_is_suspect_far_below_is_rejected():
    assert floor_check(1.2, 1.0, 0.5) == (True, None)
    plausible, suspect = floor_check(0.76, 1.0, 0.5)       # a roofline_fraction of 1.32
    assert plausible and "below the roofline floor 1 ms (fraction 1.32)" in suspect
    plausible, suspect = floor_check(0.4, 1.0, 0.5)
    assert not plausible and suspect


def test_suspect_travels_in_the_stored_verdict():
    from akg.store import verdict_from_json, verdict_to_json
    v = Verdict("c", "done", True, True, time_ms=0.76, suspect="0.76 ms is below the roofline floor")
    assert verdict_from_json(verdict_to_json(v)).suspect == v.suspect
    old = json.loads(verdict_to_json(v))
    del old["suspect"]                                      # a row stored before the field existed
    assert verdict_from_json(json.dumps(old)).suspect is None


def test_peak_counts_both_fma_units():
    cpu = host.HostCpu("x", cores=2, clock_ghz=2.0, vector_width_bits=512, l2_bytes=0, llc_bytes=0)
    # 2 cores x 2 GHz x 16 lanes x 2 FMA units x 2 FLOP
    assert abs(host.peak_fp32_tflops(cpu) - 0.256) < 1e-9


def test_peak_is_never_below_what_a_matmul_reaches(monkeypatch, tmp_path):
    monkeypatch.setenv("AKG_CACHE_DIR", str(tmp_path))
    cpu = host.HostCpu("x", cores=2, clock_ghz=2.0, vector_width_bits=256, l2_bytes=0, llc_bytes=0)
    monkeypatch.setattr(host, "measure_peak_fp32_tflops", lambda: 9.0)   # clock misread, say
    assert host.peak_tflops(cpu) == 9.0


def test_bandwidth_counts_the_read_only_rate(monkeypatch, tmp_path):
    # A read-mostly kernel streams faster than a copy; the floor must use the faster of the two.
    import torch
    calls = {"sum": 0}
    real_sum = torch.Tensor.sum

    def counted(self, *a, **k):
        calls["sum"] += 1
        return real_sum(self, *a, **k)
    monkeypatch.setattr(torch.Tensor, "sum", counted)
    gbs = host.measure_copy_bandwidth_gbs(1 << 20, repeats=2)
    assert gbs > 0 and calls["sum"] == 2


def test_cached_figures_only_rise(monkeypatch, tmp_path):
    # A figure measured while the machine was busy is low; a later, higher one replaces it.
    monkeypatch.setenv("AKG_CACHE_DIR", str(tmp_path))
    cpu = host.HostCpu("x", cores=2, clock_ghz=2.0, vector_width_bits=256, l2_bytes=0, llc_bytes=0)
    assert host._cached(cpu, "q", lambda: 3.8) == 3.8
    assert host._cached(cpu, "q", lambda: 99.0) == 3.8            # fresh: not measured again
    monkeypatch.setattr(host, "REMEASURE_AFTER_S", 0.0)
    assert host._cached(cpu, "q", lambda: 26.0) == 26.0
    assert host._cached(cpu, "q", lambda: 5.0) == 26.0            # a busy re-measurement never lowers it
