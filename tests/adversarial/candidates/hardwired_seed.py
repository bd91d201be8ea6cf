# expect: reject fresh_outputs,allclose
# problem: scale_add
# policy: standard
# class: hard-wired seed (precomputes the answer for the inputs of seed 0)
import torch
import torch.nn as nn

torch.manual_seed(0)
_X, _Y = torch.randn(4096), torch.randn(4096)
_ANSWER = _X * 2.0 + _Y


class ModelNew(nn.Module):
    def forward(self, x, y):
        return _ANSWER.clone()
