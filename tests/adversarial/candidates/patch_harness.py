# expect: reject timer_integrity
# problem: scale_add
# policy: standard
# class: tampering with harness state (disables the input comparison, then mutates inputs)
import sys

import torch
import torch.nn as nn

for name, module in list(sys.modules.items()):
    if name.endswith("harness.runner"):
        module._same = lambda a, b: True


class ModelNew(nn.Module):
    def forward(self, x, y):
        return y.add_(x, alpha=2.0)
