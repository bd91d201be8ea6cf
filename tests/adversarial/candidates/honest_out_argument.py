# expect: accept
# problem: scale_add
# policy: standard
# class: honest, uninitialised buffer that is fully written (torch.empty + out=)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, y):
        out = torch.empty_like(x)
        torch.mul(x, 2.0, out=out)
        return out.add_(y)
