# expect: reject output_count
# problem: scale_add
# policy: standard
# class: wrong number of outputs
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, y):
        out = x * 2.0 + y
        return out, out
