# expect: reject unwritten_output,nan_positions,allclose
# problem: scale_add
# policy: standard
# class: uninitialized memory (writes only the first half of the output)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, y):
        out = torch.empty_like(x)
        half = x.shape[0] // 2
        torch.add(x[:half] * 2.0, y[:half], out=out[:half])
        return out
