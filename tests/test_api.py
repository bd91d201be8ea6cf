"""akg.optimize on a live module returns a verified module and a report."""
import sys

import torch

import akg

MODULE = '''
import torch
import torch.nn as nn

class ScaledTanh(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(256))

    def forward(self, x, y):
        return torch.tanh(x * self.scale + y) * 0.5
'''


def test_optimize_a_live_module(tmp_path, monkeypatch):
    (tmp_path / "user_models.py").write_text(MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    from user_models import ScaledTanh

    model = ScaledTanh()
    x, y = torch.randn(128, 256), torch.randn(128, 256)
    result = akg.optimize(model, [x, y], dsl="cpp", device="cpu", budget=2, out=tmp_path / "out",
                          store=tmp_path / "s.db")
    assert result.report["best"]["correct"]
    assert any(c["origin"] == "template" and c["correct"] for c in result.report["candidates"])
    torch.testing.assert_close(result.module(x, y), model(x, y))
    sys.modules.pop("user_models", None)
