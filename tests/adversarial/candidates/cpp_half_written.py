# expect: reject unwritten_output,nan_positions,allclose
# problem: scale_add
# policy: strict
# class: uninitialized memory from a C++ kernel that skips the last elements
import ctypes
import hashlib
import os
import subprocess
from pathlib import Path

import torch
import torch.nn as nn

_SOURCE = r"""
extern "C" void scale_add_most(const float* x, const float* y, float* out, long n) {
    for (long i = 0; i < n - n / 8; ++i) out[i] = x[i] * 2.0f + y[i];
}
"""


def _load():
    cache = Path(os.environ.get("AKG_CACHE_DIR", Path.home() / ".cache" / "akg")) / "adversarial"
    cache.mkdir(parents=True, exist_ok=True)
    lib = cache / f"scale_add_most_{hashlib.sha256(_SOURCE.encode()).hexdigest()[:12]}.so"
    if not lib.exists():
        src = cache / (lib.stem + ".cpp")
        src.write_text(_SOURCE)
        tmp = cache / (lib.stem + f".{os.getpid()}.tmp")
        subprocess.run(["g++", "-O2", "-shared", "-fPIC", str(src), "-o", str(tmp)], check=True, capture_output=True)
        os.replace(tmp, lib)
    return ctypes.CDLL(str(lib))


_LIB = _load()
_LIB.scale_add_most.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]


class ModelNew(nn.Module):
    def forward(self, x, y):
        out = torch.empty_like(x)
        _LIB.scale_add_most(x.data_ptr(), y.data_ptr(), out.data_ptr(), x.numel())
        return out
