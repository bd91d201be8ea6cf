# expect: reject rel_norm,allclose
# problem: linear_relu
# policy: standard
# class: lower precision (bfloat16 matmul)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        w, b = self.linear.weight.bfloat16(), self.linear.bias.bfloat16()
        return torch.relu(x.bfloat16() @ w.t() + b).float()
