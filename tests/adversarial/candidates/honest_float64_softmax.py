# expect: accept
# problem: softmax_rows
# policy: standard
# class: honest, higher internal precision cast back to the output dtype
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        d = x.double()
        e = (d - d.amax(dim=1, keepdim=True)).exp()
        return (e / e.sum(dim=1, keepdim=True)).to(x.dtype)
