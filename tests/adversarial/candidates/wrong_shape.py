# expect: reject shape
# problem: softmax_rows
# policy: standard
# class: wrong shape (flattened result)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        return torch.softmax(x, dim=1).reshape(-1)
