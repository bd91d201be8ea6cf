"""The example problems load and run, and malformed problems fail with one line naming them."""
import pytest
import torch

from akg.problem import ProblemError, load_problem, validate
from example_paths import EXAMPLE_PROBLEMS


def test_there_are_enough_examples():
    assert len(EXAMPLE_PROBLEMS) >= 18


@pytest.mark.parametrize("path", EXAMPLE_PROBLEMS, ids=lambda p: p.stem)
def test_example_problem_is_valid(path):
    problem = load_problem(path)
    outputs = validate(problem)
    assert all(o.dtype in (torch.float32, torch.int64) for o in outputs)
    inputs = problem.example_inputs()
    assert all(x.device.type == "cpu" for x in inputs if isinstance(x, torch.Tensor))
    assert "AKG_SIZE" in problem.source


BAD = {
    "syntax": ("def broken(:\n", "syntax error"),
    "no_model": ("import torch\ndef get_inputs(): return []\ndef get_init_inputs(): return []\n", "no class Model"),
    "inputs_raise": ("import torch\nclass Model(torch.nn.Module):\n    def forward(self, x): return x\n"
                     "def get_inputs(): raise RuntimeError('boom')\ndef get_init_inputs(): return []\n", "get_inputs() raised"),
    "non_tensor": ("import torch\nclass Model(torch.nn.Module):\n    def forward(self, x): return 3\n"
                   "def get_inputs(): return [torch.ones(2)]\ndef get_init_inputs(): return []\n", "not a tensor"),
    # State kept between calls: no seed makes two runs agree (torch.rand_like would: see below).
    "nondeterministic": ("import torch\nclass Model(torch.nn.Module):\n    def forward(self, x):\n        self.n = getattr(self, 'n', 0) + 1\n        return x + self.n\n"
                         "def get_inputs(): return [torch.ones(2)]\ndef get_init_inputs(): return []\n", "nondeterministic"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_problem_is_a_one_line_problem_error(tmp_path, case):
    text, expected = BAD[case]
    path = tmp_path / f"bad_{case}.py"
    path.write_text(text)
    with pytest.raises(ProblemError) as info:
        validate(load_problem(path))
    message = str(info.value)
    assert "\n" not in message and f"bad_{case}" in message and expected in message


def test_a_reference_that_draws_random_numbers_is_accepted(tmp_path):
    path = tmp_path / "draws.py"
    path.write_text("import torch\nclass Model(torch.nn.Module):\n    def forward(self, x): return x + torch.rand_like(x)\n"
                    "def get_inputs(): return [torch.ones(2)]\ndef get_init_inputs(): return []\n")
    assert validate(load_problem(path))[0].shape == (2,)
