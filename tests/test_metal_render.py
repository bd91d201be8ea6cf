"""The metal DSL without an Apple GPU: the rendered Metal kernels compile as C++ through a shim
header (tests/metal_shim.h), run once per thread position on the CPU, and match torch."""
from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from akg import plugins
from akg.ir import FusedGroup, Schedule
from akg.dsls.metal.render import kernel_source
from akg.targets import RenderError
from cuda_c_cases import CASES

HERE = Path(__file__).parent
GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ is needed to compile Metal kernels through the CPU shim")


def metal_group(case, kernel):
    """The case's group with its variant only (Metal has no thread or vector knobs; split -> row)."""
    variant = dict(case.knobs).get("variant")
    knobs = (("variant", "row" if variant == "split" else variant),) if variant else ()
    return FusedGroup(("n0",), case.family, kernel, Schedule(knobs))


def _check(got, want):
    want = want if isinstance(want, tuple) else (want,)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        if g.dtype.is_floating_point:
            # float32 sums accumulate in float: Metal has no double
            tol = 1e-2 if g.dtype in (torch.float16, torch.bfloat16) else 1e-4
            torch.testing.assert_close(g, w, rtol=tol, atol=tol, equal_nan=True)
        else:
            assert torch.equal(g, w)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every case's kernels in one library, compiled once."""
    made = [case.make() for case in CASES]
    groups = [(i, metal_group(case, m[0])) for i, (case, m) in enumerate(zip(CASES, made))]
    source, launchers, dispatch = kernel_source(groups)
    folder = tmp_path_factory.mktemp("metal")
    drivers = "\n".join(f'extern "C" void drive_{name}(void** p, uint64_t n) {{ akg_drive({name}, p, n); }}'
                        for name, _ in dispatch)
    (folder / "kernels.cpp").write_text(source + "\n" + drivers + "\n")
    done = subprocess.run([GXX, "-std=c++17", "-O1", "-shared", "-fPIC", "-Wno-attributes", "-include",
                           str(HERE / "metal_shim.h"), "-o", str(folder / "kernels.so"), str(folder / "kernels.cpp")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return ctypes.CDLL(str(folder / "kernels.so")), made, dispatch, source


@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.name for c in CASES])
def test_case_matches_torch(built, index):
    library, made, dispatch, _ = built
    kernel, inputs, reference = made[index]
    name, threads = dispatch[index]
    outputs = [torch.empty(o.type.shape, dtype=getattr(torch, o.type.dtype)) for o in kernel.outputs]
    pointers = (ctypes.c_void_p * (len(inputs) + len(outputs)))(*[t.data_ptr() for t in inputs + outputs])
    getattr(library, f"drive_{name}")(pointers, ctypes.c_uint64(threads))
    _check(tuple(outputs), reference(*inputs))


def test_metal_source_uses_metal_spellings(built):
    source = built[3]
    assert "#include <metal_stdlib>" in source and "[[buffer(0)]]" in source
    assert "[[thread_position_in_grid]]" in source and "double" not in source


def test_float64_is_refused_with_a_reason():
    from test_cpp_support import dense, output, call
    from akg.ir import Load, PointwiseKernel
    x = torch.randn(8, dtype=torch.float64)
    kernel = PointwiseKernel((8,), (dense("x", x),), (output("y", call("exp", Load(0, "float64")), (8,)),))
    with pytest.raises(RenderError, match="float64"):
        kernel_source([(0, FusedGroup(("n0",), "pointwise", kernel))])


def test_rendered_candidate_dispatches_through_compile_shader():
    case = CASES[0]
    text = plugins.get_dsl("metal").render([(0, metal_group(case, case.make()[0]))], "mps")
    compile(text, "<candidate>", "exec")
    assert "torch.mps.compile_shader" in text and 'getattr(_akg_library(), "akg_g0")' in text


def test_mps_backend_lists_m_series_descriptors():
    names = {h.name for h in plugins.get_backend("mps").descriptors()}
    assert {"apple-m1", "apple-m2-max", "apple-m3-max", "apple-m4-max"} <= names
