# expect: accept
# problem: scale_add
# policy: standard
# class: honest, threads that finish before forward returns
import threading

import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def forward(self, x, y):
        out = torch.empty_like(x)
        half = x.shape[0] // 2

        def work(lo, hi):
            torch.add(x[lo:hi] * 2.0, y[lo:hi], out=out[lo:hi])

        threads = [threading.Thread(target=work, args=(0, half)), threading.Thread(target=work, args=(half, x.shape[0]))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out
