# expect: reject input_mutation,fresh_outputs
# problem: scale_add
# policy: standard
# class: mutating inputs (writes the result into y and returns it)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, y):
        return y.add_(x, alpha=2.0)
