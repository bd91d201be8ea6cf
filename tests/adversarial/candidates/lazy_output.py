# expect: reject plain_tensor
# problem: softmax_rows
# policy: standard
# class: lazy tensors (the work happens only when someone looks at the result)
import torch
import torch.nn as nn


class Deferred:
    def __init__(self, x):
        self.x = x

    def __torch_function__(self, func, types, args=(), kwargs=None):
        real = [torch.softmax(a.x, dim=1) if isinstance(a, Deferred) else a for a in args]
        return func(*real, **(kwargs or {}))


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        return Deferred(x)
