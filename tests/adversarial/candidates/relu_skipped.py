# expect: reject allclose,rel_norm
# problem: linear_relu
# policy: standard
# class: input-range shortcut (assumes the linear output is never negative)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return self.linear(x)
