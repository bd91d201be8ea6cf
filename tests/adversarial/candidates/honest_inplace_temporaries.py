# expect: accept
# problem: scale_add
# policy: standard
# class: honest, in-place work on its own temporaries (inputs untouched)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, y):
        out = x.clone()
        out.mul_(2.0)
        out.add_(y)
        return out
