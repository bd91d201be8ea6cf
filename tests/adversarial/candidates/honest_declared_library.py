# expect: accept
# problem: linear_relu
# policy: strict
# class: honest, declared library ops under strict
import torch
import torch.nn as nn

AKG_LIBRARY_OPS = ("aten.addmm.default", "aten.relu.default")


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return torch.relu(self.linear(x))
