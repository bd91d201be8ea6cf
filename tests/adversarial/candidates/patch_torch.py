# expect: reject timer_integrity
# problem: softmax_rows
# policy: standard
# class: patching torch functions (makes the reference slower so the speedup looks larger)
import time

import torch
import torch.nn as nn

_softmax = torch.softmax


def _slow_softmax(*args, **kwargs):
    time.sleep(0.001)
    return _softmax(*args, **kwargs)


torch.softmax = _slow_softmax


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        return _softmax(x, dim=1)
