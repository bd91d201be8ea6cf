# expect: reject rel_norm,allclose
# problem: scale_add
# policy: standard
# class: near-zero values: tiny outputs that an absolute tolerance alone would accept
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, y):
        return (x * 2.0 + y) * 1e-6
