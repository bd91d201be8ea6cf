# expect: reject plain_tensor,device
# problem: scale_add
# policy: standard
# class: wrong device (a meta tensor has a shape and a dtype but no values)
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, y):
        return torch.empty(x.shape, dtype=x.dtype, device="meta")
