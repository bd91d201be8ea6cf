# expect: reject dtype
# problem: scale_add
# policy: standard
# class: wrong dtype (float64 result: more accurate, but not what the caller gets from Model)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, y):
        return x.double() * 2.0 + y.double()
