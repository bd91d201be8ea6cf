# expect: reject timer_integrity
# problem: scale_add
# policy: standard
# class: patching timers (the clock runs at a tenth of its speed)
import time

import torch
import torch.nn as nn

_real = time.perf_counter_ns
_start = _real()
time.perf_counter_ns = lambda: _start + (_real() - _start) // 10


class ModelNew(nn.Module):
    def forward(self, x, y):
        return x * 2.0 + y
