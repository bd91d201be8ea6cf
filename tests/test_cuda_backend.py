"""The CUDA backend plugin without a GPU: descriptors, name matching, ncu output parsing."""
from __future__ import annotations

import pytest

from akg.backends.cuda.backend import CudaBackend, match_descriptor
from akg.backends.cuda.profiler import parse_ncu_csv
from akg.plugins import get_backend, hardware_descriptors

REQUIRED = {"h100-sxm", "h100-pcie", "h200", "a100-80gb", "l40s", "rtx-4090", "b200"}


def test_plugin_is_registered_through_entry_points():
    backend = get_backend("cuda")
    assert isinstance(backend, CudaBackend) and backend.torch_device == "cuda"
    assert REQUIRED <= {h.name for h in hardware_descriptors()}


@pytest.mark.parametrize("spec", CudaBackend().descriptors(), ids=lambda s: s.name)
def test_descriptor_is_complete(spec):
    assert spec.backend == "cuda" and spec.match
    assert spec.compute_units > 0 and spec.memory_bandwidth_gbs > 0 and spec.l2_bytes > 0
    assert spec.shared_mem_per_block <= spec.shared_mem_per_sm and spec.warp_size == 32
    assert spec.peak("fp32") > 0 and spec.peak("bf16") > spec.peak("fp32")
    # Every figure carries its source in a comment of the file.
    assert "Source:" in open(spec.source).read()


def test_hopper_and_blackwell_have_tma_ampere_and_ada_do_not():
    specs = {s.name: s for s in CudaBackend().descriptors()}
    assert specs["h100-sxm"].tma and specs["b200"].tma
    assert not specs["a100-80gb"].tma and not specs["l40s"].tma
    assert specs["l40s"].peak("fp8") > 0 and specs["a100-80gb"].peak("fp8") == 0


@pytest.mark.parametrize("device_name,expected", [
    ("NVIDIA H100 80GB HBM3", "h100-sxm"),
    ("NVIDIA H100 PCIe", "h100-pcie"),
    ("NVIDIA H200", "h200"),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb"),
    ("NVIDIA GeForce RTX 4090", "rtx-4090"),
    ("NVIDIA L40S", "l40s"),
    ("NVIDIA B200", "b200"),
])
def test_device_names_select_their_descriptor(device_name, expected):
    assert match_descriptor(device_name, CudaBackend().descriptors()).name == expected


def test_unknown_device_matches_nothing():
    assert match_descriptor("NVIDIA GeForce GTX 1080", CudaBackend().descriptors()) is None


def test_roofline_uses_descriptor_bandwidth():
    h100 = next(s for s in CudaBackend().descriptors() if s.name == "h100-sxm")
    # 3.35 GB through 3350 GB/s takes 1 ms.
    assert h100.roofline_ms(flops=0.0, bytes_moved=3.35e9) == pytest.approx(1.0)


def test_ncu_csv_is_read_per_kernel():
    text = ('==PROF== Connected\n"ID","Process ID","Process Name","Host Name","Kernel Name","Context","Stream",'
            '"Block Size","Grid Size","Device","CC","Section Name","Metric Name","Metric Unit","Metric Value"\n'
            '"0","1","python","h","_akg_g0_kernel","1","7","(128, 1, 1)","(10, 1, 1)","0","9.0","Command line",'
            '"gpu__time_duration.sum","usecond","12.5"\n')
    assert parse_ncu_csv(text) == {"_akg_g0_kernel": {"gpu__time_duration.sum": "12.5"}}
