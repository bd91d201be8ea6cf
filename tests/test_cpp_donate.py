"""A pointwise pass may write its result over a dead temporary input (``_akg_donate``): only a
temporary of this call that nothing later reads, never an input, parameter, output or viewed value."""
from __future__ import annotations

import re
import warnings

import pytest
import torch

from akg import plugins
from akg.agents import analyzer, coder
from rewrite_cases import write_problem

MATMUL_RELU = """
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(48, 40))

    def forward(self, x):
        return torch.relu(torch.mm(x, self.w) + 1.5)

def get_inputs():
    return [torch.randn(24, 48)]

def get_init_inputs():
    return []
"""

# The matmul's result is also returned: it must not be overwritten.
MATMUL_RETURNED = MATMUL_RELU.replace("return torch.relu(torch.mm(x, self.w) + 1.5)",
                                      "y = torch.mm(x, self.w)\n        return y, torch.relu(y + 1.5)")
# The matmul's result is read again by a later reduction: it must not be overwritten.
MATMUL_READ_LATER = MATMUL_RELU.replace("return torch.relu(torch.mm(x, self.w) + 1.5)",
                                        "y = torch.mm(x, self.w)\n        return torch.relu(y + 1.5) * y.sum(1, keepdim=True)")
# A view of the matmul's result is read: the viewed value must not be overwritten.
MATMUL_VIEWED = MATMUL_RELU.replace("return torch.relu(torch.mm(x, self.w) + 1.5)",
                                    "y = torch.mm(x, self.w)\n        return torch.relu(y + 1.5) + y.t().reshape(24, 40)")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AKG_CACHE_DIR", str(tmp_path))


def _candidates(tmp_path, body: str):
    problem = write_problem(tmp_path, body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, plans = analyzer.plans_for(problem)
    dsl = plugins.get_dsl("cpp")
    found = []
    for plan in plans:
        try:
            found.append(coder.make_candidate(plan, dsl, "cpu", problem.source, "p"))
        except Exception:   # a plan the cpp DSL cannot render
            continue
    return problem, found


def _run(candidate, problem):
    namespace: dict = {}
    exec(compile(candidate.source, "<candidate>", "exec"), namespace)
    torch.manual_seed(0)
    model = namespace["Model"]()
    new = namespace["ModelNew"]()
    new.load_state_dict(model.state_dict())
    inputs = problem.example_inputs(3)
    kept = [t.clone() for t in inputs]
    with torch.no_grad():
        expected, got = model(*inputs), new(*inputs)
    for before, after in zip(kept, inputs):   # the caller's inputs are never written
        torch.testing.assert_close(before, after, rtol=0, atol=0)
    return expected, got


def test_a_pass_after_a_library_matmul_writes_over_its_result_and_agrees(tmp_path):
    problem, candidates = _candidates(tmp_path, MATMUL_RELU)
    donating = [c for c in candidates if "_akg_donate=0" in c.source]
    assert donating, "the pointwise pass after the matmul should take the matmul's buffer"
    for candidate in donating:
        expected, got = _run(candidate, problem)
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("body", [MATMUL_RETURNED, MATMUL_READ_LATER, MATMUL_VIEWED],
                         ids=["returned", "read-later", "viewed"])
def test_a_temporary_still_needed_is_never_donated(body, tmp_path):
    problem, candidates = _candidates(tmp_path, body)
    assert candidates
    for candidate in candidates:
        forward = candidate.source.split("class ModelNew", 1)[1]
        for line in forward.splitlines():
            if "_akg_donate=" in line:   # only a value no later line reads and the forward does not return
                donated = re.search(r"_akg_g\d+\((.*), _akg_donate=(\d+)\)", line)
                value = [a.strip() for a in donated.group(1).split(",")][int(donated.group(2))]
                rest = forward.split(line, 1)[1]
                assert not re.search(rf"\b{value}\b", rest), (candidate.description, value)
        expected, got = _run(candidate, problem)
        for e, g in zip(expected if isinstance(expected, tuple) else (expected,),
                        got if isinstance(got, tuple) else (got,)):
            torch.testing.assert_close(g, e)


def test_the_launcher_writes_in_place_only_where_the_layout_allows(tmp_path):
    problem, candidates = _candidates(tmp_path, MATMUL_RELU)
    candidate = next(c for c in candidates if "_akg_donate=0" in c.source)
    namespace: dict = {}
    exec(compile(candidate.source, "<candidate>", "exec"), namespace)
    launcher = re.search(r"\((v_\w+),\) = (_akg_g\d+)\((v_\w+), _akg_donate=0\)", candidate.source).group(2)
    y = torch.randn(24, 40)
    expected = torch.relu(y + 1.5)
    (fresh,) = namespace[launcher](y.clone())
    torch.testing.assert_close(fresh, expected)
    donated = y.clone()
    (out,) = namespace[launcher](donated, _akg_donate=0)
    assert out.data_ptr() == donated.data_ptr()
    torch.testing.assert_close(out, expected)
    # A transposed temporary is laid out again (a copy) before the kernel reads it: the result
    # lands in that copy and the caller's tensor keeps its values.
    transposed = y.t().contiguous().t()
    (out,) = namespace[launcher](transposed, _akg_donate=0)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(transposed, y)


def test_the_renderer_refuses_a_family_the_dsl_does_not_list(tmp_path):
    # Rendered as a row reduction, a reduction over several dims computed wrong values.
    from akg.ir import LibraryCall
    from akg.targets import RenderError
    from test_conv_epilogue import CONV_GROUP_NORM_SILU
    problem = write_problem(tmp_path, CONV_GROUP_NORM_SILU)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, plans = analyzer.plans_for(problem)
    nd = next(p for p in plans if any(g.family == "reduction_nd" for g in p.groups))
    dsl = plugins.get_dsl("cpp")
    assert "reduction_nd" not in dsl.families
    groups = [(i, g) for i, g in enumerate(nd.groups) if not isinstance(g.kernel, LibraryCall)]
    with pytest.raises(RenderError, match="reduction_nd"):
        dsl.render(groups, "cpu")
