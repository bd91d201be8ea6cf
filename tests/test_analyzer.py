import pytest
import torch

from akg import ir
from akg.agents.analyzer import analyze, format_analysis, trace
from akg.problem import from_module, load_problem
from akg.targets import HardwareSpec
from example_paths import EXAMPLES

GPU = HardwareSpec("test-gpu", "cuda", memory_bandwidth_gbs=1000.0, peak_tflops=(("fp32", 50.0),))


def test_trace_names_inputs_params_and_types():
    g = trace(load_problem(EXAMPLES / "08_layer_norm.py"))
    assert g.inputs == ("x",)
    assert g.params == ("p:norm.weight", "p:norm.bias")
    assert g.type_of("x") == ir.TensorType((8, 128, 1024), "float32", (128 * 1024, 1024, 1))
    assert not g.returns_tuple


def test_trace_maps_aten_to_primitives():
    g = trace(load_problem(EXAMPLES / "01_pointwise_chain.py"))
    assert [n.op for n in g.nodes] == ["mul", "add", "tanh", "mul"]
    assert all(n.kind == "pointwise" for n in g.nodes)
    reduction = trace(load_problem(EXAMPLES / "12_mean_middle_dim.py"))
    assert reduction.nodes[0].kind == "library" and reduction.nodes[0].op == "aten.mean.dim"


class _TwoOutputs(torch.nn.Module):
    def forward(self, x, scale):
        return x * scale, x.sum(dim=0)


def test_trace_specialises_scalars_and_keeps_tuples():
    g = trace(from_module(_TwoOutputs(), [torch.randn(4, 8), 3.0]))
    assert g.returns_tuple and len(g.outputs) == 2
    assert len(g.inputs) == 2 and dict(g.constants)[g.inputs[1]] == 3.0
    sums = [n for n in g.nodes if n.kind == "reduction"]
    assert sums[0].attr("dims") == (0,) and sums[0].attr("keepdim") is False


def test_analyze_matmul_flops_and_bound():
    a = analyze(load_problem(EXAMPLES / "26_matmul_scale_residual.py"), [GPU])
    m, k, n = 512, 1024, 256
    assert a.flops >= 2 * m * n * k
    assert a.bytes_moved == 4 * (m * k + k * n + m * n + m * n)
    floor = dict(a.roofline_ms)["test-gpu"]
    assert floor == pytest.approx(max(a.bytes_moved / 1e12, a.flops / 50e12) * 1e3)


def test_analyze_pointwise_is_memory_bound_and_formats():
    a = analyze(load_problem(EXAMPLES / "02_gelu.py"), [GPU])
    assert a.bound == "memory"
    text = format_analysis(a)
    assert "flops" in text and "test-gpu" in text and "memory" in text


def test_analyze_conv_flops():
    a = analyze(load_problem(EXAMPLES / "27_conv2d_bias_relu.py"), [GPU])
    conv = 2 * 8 * 32 * 32 * 32 * 32 * 9
    assert conv <= a.flops < conv * 1.1


def test_analyze_counts_flops_on_the_decomposed_graph():
    """Layer norm is one library call when traced; its floor needs the ops inside it."""
    a = analyze(load_problem(EXAMPLES / "08_layer_norm.py"), [GPU])
    numel = 8 * 128 * 1024
    assert a.flops >= 6 * numel   # two means, centring, square, scale, affine
    assert all(n.op != "aten.native_layer_norm.default" for n in a.graph.nodes)


def test_conv_floor_uses_the_tf32_peak_torch_allows(monkeypatch):
    tensor_cores = HardwareSpec("tc-gpu", "cuda", memory_bandwidth_gbs=1e9, peak_tflops=(("fp32", 50.0), ("tf32", 400.0)))
    problem = load_problem(EXAMPLES / "27_conv2d_bias_relu.py")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    fast = dict(analyze(problem, [tensor_cores, GPU]).roofline_ms)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    exact = dict(analyze(problem, [tensor_cores, GPU]).roofline_ms)
    assert fast["tc-gpu"] == pytest.approx(exact["tc-gpu"] / 8, rel=0.05)   # conv FLOPs dominate
    assert fast["test-gpu"] == pytest.approx(exact["test-gpu"])              # no TF32 peak: fp32 rate


def test_ieee_matmul_floor_allows_fp32_accuracy_from_three_tf32_products():
    """torch keeps fp32 matmuls in IEEE fp32 by default; split-TF32 products give fp32 accuracy at a
    third of the TF32 rate, so the floor is the faster of that and the fp32 peak."""
    tensor_cores = HardwareSpec("tc-gpu", "cuda", memory_bandwidth_gbs=1e9, peak_tflops=(("fp32", 50.0), ("tf32", 400.0)))
    problem = load_problem(EXAMPLES / "26_matmul_scale_residual.py")
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        floors = dict(analyze(problem, [tensor_cores, GPU]).roofline_ms)
    finally:
        torch.set_float32_matmul_precision(before)
    m, k, n = 512, 1024, 256
    assert floors["tc-gpu"] == pytest.approx(2 * m * n * k / (400e12 / 3) * 1e3, rel=0.05)
    assert floors["test-gpu"] == pytest.approx(2 * m * n * k / 50e12 * 1e3, rel=0.05)   # no TF32 units
