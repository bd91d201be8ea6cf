# expect: reject fresh_outputs,allclose
# problem: scale_add
# policy: standard
# class: reuse of earlier outputs (computes once, returns the same tensor afterwards)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.cached = None

    def forward(self, x, y):
        if self.cached is None:
            self.cached = x * 2.0 + y
        return self.cached
