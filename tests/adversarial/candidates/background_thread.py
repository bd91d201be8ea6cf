# expect: reject async_work,nan_positions,unwritten_output
# problem: scale_add
# policy: standard
# class: work left running after return (a thread fills the output later)
import threading
import time

import torch
import torch.nn as nn


def _fill(out, x, y):
    time.sleep(0.005)
    torch.add(x * 2.0, y, out=out)


class ModelNew(nn.Module):
    def forward(self, x, y):
        out = torch.empty_like(x)
        threading.Thread(target=_fill, args=(out, x, y), daemon=True).start()
        return out
