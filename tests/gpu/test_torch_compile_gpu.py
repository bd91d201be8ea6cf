"""torch.compile(model, backend="akg") on an NVIDIA GPU: Triton is chosen, the matmul and its pointwise
tail are one subgraph (Triton has a matmul-epilogue template), it is searched, outputs match eager."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

import akg  # noqa: E402
import akg.dynamo  # noqa: E402
from akg.dynamo import settings as compile_settings  # noqa: E402


class ChainAfterMatmul(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(512, 1024)
        self.scale = torch.nn.Parameter(torch.randn(1024))

    def forward(self, x):
        return torch.sigmoid(torch.tanh(self.lin(x) * self.scale + 1.0)) * 0.5


def test_compile_on_the_gpu_uses_a_verified_triton_kernel(tmp_path):
    akg.configure(reset=True, budget=2, time_limit=180, store=tmp_path / "store.db")
    akg.dynamo.reset_stats()
    torch._dynamo.reset()
    try:
        model = ChainAfterMatmul().cuda().eval()
        x = torch.randn(4096, 512, device="cuda")
        with torch.no_grad():
            out = torch.compile(model, backend="akg")(x)
            ref = model(x)
        torch.testing.assert_close(out, ref, rtol=2e-3, atol=2e-3)   # TF32 may be on for the matmul
        stats = akg.dynamo.stats()
        assert stats["subgraphs"] >= 1 and stats["searches"] >= 1, stats
        print("akg.dynamo.stats():", stats)
    finally:
        compile_settings._overrides.clear()
        torch._dynamo.reset()
