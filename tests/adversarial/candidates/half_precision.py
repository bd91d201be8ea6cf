# expect: reject rel_norm,allclose
# problem: softmax_rows
# policy: standard
# class: lower precision (computes in float16, returns float32)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        return torch.softmax(x.half().float(), dim=1).half().float()
