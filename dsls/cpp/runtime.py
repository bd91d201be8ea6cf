"""Build, cache and load generated C++, and prepare tensors for it.

This file is copied verbatim into every candidate rendered by the cpp DSL, so it may import only
the standard library and torch: a candidate must run where akg is not installed. akg's own
``prebuild`` imports it too, so workers and the build step agree on flags and cache keys.
"""
import ctypes
import hashlib
import os
import platform
import subprocess
import tempfile

import torch

AKG_CXX = os.environ.get("CXX", "g++")
# IEEE semantics are kept: no -ffast-math. -fno-math-errno lets sqrt vectorise; -fno-trapping-math
# lets the vectoriser if-convert branches; neither changes a result. gcc keeps AVX-512 machines at
# 256-bit vectors by default; the math helpers are compute-bound and run ~1.3x faster at 512 bits
# (x86 only; without AVX-512 the flag changes nothing).
AKG_CXX_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17",
                 "-fno-math-errno", "-fno-trapping-math", "-fno-semantic-interposition") + (
                 ("-mprefer-vector-width=512",) if platform.machine() in ("x86_64", "AMD64") else ())
_akg_loaded = {}


class AkgBuildError(RuntimeError):
    """The C++ compiler rejected generated source; the message holds its first error lines."""


def akg_cache_dir():
    root = os.environ.get("AKG_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "akg")
    return os.path.join(root, "cpp")


def _akg_host_key():
    # -march=native makes a binary specific to the CPU model it was built on.
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


def akg_library_path(source):
    key = "\0".join((source, AKG_CXX, " ".join(AKG_CXX_FLAGS), _akg_host_key()))
    return os.path.join(akg_cache_dir(), hashlib.sha256(key.encode()).hexdigest()[:24] + ".so")


def akg_build(source):
    """Compile ``source`` into the cache unless it is there; return the library path.
    Safe under concurrency: each build writes a private temporary and renames it into place."""
    path = akg_library_path(source)
    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path)) as tmp:
        cpp, so = os.path.join(tmp, "kernels.cpp"), os.path.join(tmp, "kernels.so")
        with open(cpp, "w") as f:
            f.write(source)
        result = subprocess.run([AKG_CXX, *AKG_CXX_FLAGS, cpp, "-o", so], capture_output=True, text=True)
        if result.returncode != 0:
            errors = [line for line in result.stderr.splitlines() if "error" in line] or result.stderr.splitlines()
            raise AkgBuildError("C++ build failed: " + " | ".join(errors[:5]))
        os.replace(so, path)
    return path


def akg_load(source):
    """The loaded library for ``source``, built on first use."""
    lib = _akg_loaded.get(source)
    if lib is None:
        lib = _akg_loaded[source] = ctypes.CDLL(akg_build(source))
    return lib


def akg_check(tensor, name, dtype, shape):
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise ValueError(f"{name}: the cpp kernels run on the CPU; move the tensor there first (got {tensor.device})")
    if tensor.dtype != dtype or tuple(tensor.shape) != shape:
        raise ValueError(f"{name}: expected {dtype} {list(shape)}, got {tensor.dtype} {list(tensor.shape)}; "
                         "the kernels were generated for that shape and dtype")


def akg_conform(tensor, strides):
    """``tensor`` laid out with exactly ``strides`` (the layout the kernel was generated for).
    Broadcast (stride-0) dims keep one copy of their data."""
    if tuple(tensor.stride()) == strides or tensor.numel() <= 1:
        return tensor
    if all(s > 0 for s in strides):
        size = 1 + sum((n - 1) * s for n, s in zip(tensor.shape, strides))
        out = torch.empty(size, dtype=tensor.dtype).as_strided(tensor.shape, strides)
        return out.copy_(tensor)
    shape = [n if s else 1 for n, s in zip(tensor.shape, strides)]
    size = 1 + sum((n - 1) * s for n, s in zip(shape, strides))
    base = torch.empty(max(size, 1), dtype=tensor.dtype)
    index = tuple(slice(None) if s else slice(0, 1) for s in strides)
    base.as_strided(shape, strides).copy_(tensor[index])
    return base.as_strided(tensor.shape, strides)
