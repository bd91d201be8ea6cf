# expect: accept
# problem: softmax_rows
# policy: strict
# class: honest, a C++ online-softmax kernel (one pass for max and sum) under strict
import ctypes
import hashlib
import os
import subprocess
from pathlib import Path

import torch
import torch.nn as nn

_SOURCE = r"""
#include <cmath>
extern "C" void softmax_rows(const float* x, float* out, long rows, long cols) {
    for (long r = 0; r < rows; ++r) {
        const float* in = x + r * cols;
        float m = -INFINITY, s = 0.0f;
        for (long c = 0; c < cols; ++c) {
            float v = in[c];
            if (v > m) { s = s * std::exp(m - v); m = v; }
            s += std::exp(v - m);
        }
        for (long c = 0; c < cols; ++c) out[r * cols + c] = std::exp(in[c] - m) / s;
    }
}
"""


def _load():
    cache = Path(os.environ.get("AKG_CACHE_DIR", Path.home() / ".cache" / "akg")) / "adversarial"
    cache.mkdir(parents=True, exist_ok=True)
    lib = cache / f"softmax_{hashlib.sha256(_SOURCE.encode()).hexdigest()[:12]}.so"
    if not lib.exists():
        src = cache / (lib.stem + ".cpp")
        src.write_text(_SOURCE)
        tmp = cache / (lib.stem + f".{os.getpid()}.tmp")
        subprocess.run(["g++", "-O2", "-shared", "-fPIC", str(src), "-o", str(tmp)], check=True, capture_output=True)
        os.replace(tmp, lib)
    return ctypes.CDLL(str(lib))


_LIB = _load()
_LIB.softmax_rows.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long, ctypes.c_long]


class ModelNew(nn.Module):
    def __init__(self, dim):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        out = torch.empty_like(x)
        _LIB.softmax_rows(x.data_ptr(), out.data_ptr(), x.shape[0], x.shape[1])
        return out
