"""sigmoid(cummax(x, dim=0).values) for 2-d float32 CPU tensors: one pass down the rows, vectorised across columns."""
import ctypes
import hashlib
import os
import subprocess
import tempfile

import torch
import torch.nn as nn

_AKG_CPP_SOURCE = r'''
#include <cmath>
#include <cstdint>
extern "C" void cummax_sigmoid(const float* __restrict x, float* __restrict y, int64_t rows, int64_t cols) {
    const int64_t block = 64;  // columns at a time: walk down the rows of a block, vectorised across it
    for (int64_t c0 = 0; c0 < cols; c0 += block) {
        const int64_t n = cols - c0 < block ? cols - c0 : block;
        float m[64];
        for (int64_t j = 0; j < n; ++j) m[j] = x[c0 + j];
        for (int64_t r = 0; r < rows; ++r) {
            const float* xr = x + r * cols + c0;
            float* yr = y + r * cols + c0;
            #pragma omp simd
            for (int64_t j = 0; j < n; ++j) {
                const float v = xr[j];
                // torch.cummax: a NaN becomes the running maximum and stays it.
                m[j] = (m[j] != m[j]) ? m[j] : ((v != v || v >= m[j]) ? v : m[j]);
                yr[j] = m[j];
            }
        }
    }
}
'''


def _library():
    root = os.path.join(os.environ.get("AKG_CACHE_DIR") or os.path.expanduser("~/.cache/akg"), "cpp-llm")
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, hashlib.sha256(_AKG_CPP_SOURCE.encode()).hexdigest()[:24] + ".so")
    if not os.path.exists(path):
        with tempfile.TemporaryDirectory(dir=root) as tmp:
            cpp, so = os.path.join(tmp, "k.cpp"), os.path.join(tmp, "k.so")
            with open(cpp, "w") as f:
                f.write(_AKG_CPP_SOURCE)
            done = subprocess.run(["g++", "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17",
                                   cpp, "-o", so], capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError("C++ build failed: " + done.stderr[-2000:])
            os.replace(so, path)
    return ctypes.CDLL(path)


_LIB = _library()


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        x = x.contiguous()
        y = torch.empty_like(x)
        rows, cols = x.shape
        _LIB.cummax_sigmoid(ctypes.c_void_p(x.data_ptr()), ctypes.c_void_p(y.data_ptr()), ctypes.c_int64(rows),
                            ctypes.c_int64(cols))
        return torch.sigmoid(y)
