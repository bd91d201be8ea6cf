"""The runtime a cuda_c candidate carries (embedded verbatim in best.py): NVRTC compiles the CUDA-C
source to a cubin for the GPU present, cached on disk by the hash of source, options and
architecture; the CUDA driver loads it and launches kernels on torch's current stream. It needs
only torch, the NVIDIA driver and libnvrtc (which torch's CUDA wheels ship), through ctypes.
"""
import ctypes
import glob
import hashlib
import os
import sys
import tempfile

import torch


class AkgCudaError(RuntimeError):
    pass


_NVRTC = None
_DRIVER = None
_MODULES = {}
_OPTIONS = ("--std=c++17", "-default-device")


def _nvrtc_candidates():
    roots = [os.path.dirname(torch.__file__)] + list(sys.path)
    found = []
    for root in roots:
        found += glob.glob(os.path.join(root, "torch", "lib", "libnvrtc*.so*"))
        found += glob.glob(os.path.join(root, "nvidia", "*", "lib", "libnvrtc.so*"))
        found += glob.glob(os.path.join(root, "lib", "libnvrtc*.so*"))
    home = os.environ.get("CUDA_HOME") or os.environ.get("CUDA_PATH") or "/usr/local/cuda"
    found += glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")) + glob.glob(os.path.join(home, "lib", "libnvrtc.so*"))
    # The library itself, not its builtins helper (which NVRTC loads from beside it).
    return [f for f in found if "builtins" not in os.path.basename(f)] + ["libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12"]


def akg_nvrtc():
    global _NVRTC
    if _NVRTC is None:
        errors = []
        for path in _nvrtc_candidates():
            try:
                _NVRTC = ctypes.CDLL(path)
                break
            except OSError as error:
                errors.append(str(error))
        else:
            raise AkgCudaError("libnvrtc not found (install torch with CUDA, or the CUDA toolkit); tried: "
                               + "; ".join(errors[-3:]))
    return _NVRTC


def akg_arch():
    major, minor = torch.cuda.get_device_capability()
    return f"sm_{major}{minor}"


def akg_compile(source, arch):
    """CUDA-C source -> cubin bytes, through NVRTC. Raises AkgCudaError with the compiler log."""
    nvrtc = akg_nvrtc()
    prog = ctypes.c_void_p()
    status = nvrtc.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"akg.cu", 0, None, None)
    if status:
        raise AkgCudaError(f"nvrtcCreateProgram failed ({status})")
    try:
        options = [o.encode() for o in _OPTIONS + (f"--gpu-architecture={arch}",)]
        array = (ctypes.c_char_p * len(options))(*options)
        status = nvrtc.nvrtcCompileProgram(prog, len(options), array)
        if status:
            size = ctypes.c_size_t()
            nvrtc.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            nvrtc.nvrtcGetProgramLog(prog, log)
            raise AkgCudaError("NVRTC: " + log.value.decode(errors="replace").strip())
        size = ctypes.c_size_t()
        if nvrtc.nvrtcGetCUBINSize(prog, ctypes.byref(size)):
            raise AkgCudaError("nvrtcGetCUBINSize failed")
        cubin = ctypes.create_string_buffer(size.value)
        if nvrtc.nvrtcGetCUBIN(prog, cubin):
            raise AkgCudaError("nvrtcGetCUBIN failed")
        return cubin.raw
    finally:
        nvrtc.nvrtcDestroyProgram(ctypes.byref(prog))


def akg_cache_path(source, arch):
    root = os.environ.get("AKG_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "akg")
    key = hashlib.sha256("\0".join((source, arch) + _OPTIONS).encode()).hexdigest()[:32]
    return os.path.join(root, "cuda_c", key + ".cubin")


def akg_build(source, arch):
    """The cubin of ``source`` for ``arch``, compiled once per (source, options, arch)."""
    path = akg_cache_path(source, arch)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    cubin = akg_compile(source, arch)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(cubin)
    os.replace(tmp, path)  # a concurrent build of the same source writes the same bytes
    return cubin


def _driver():
    global _DRIVER
    if _DRIVER is None:
        _DRIVER = ctypes.CDLL("libcuda.so.1")
        _DRIVER.cuLaunchKernel.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 6 + [
            ctypes.c_uint, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    return _DRIVER


def _check(status, what):
    if status:
        raise AkgCudaError(f"{what} failed with CUDA driver error {status}")


def akg_load(source):
    """Functions of ``source`` by name, for the current device (compiled or read from the cache)."""
    device = torch.cuda.current_device()
    key = (source, device)
    if key not in _MODULES:
        torch.empty(1, device="cuda")  # torch makes the device's primary context current
        driver = _driver()
        ctx = ctypes.c_void_p()
        _check(driver.cuCtxGetCurrent(ctypes.byref(ctx)), "cuCtxGetCurrent")
        cubin = akg_build(source, akg_arch())
        module = ctypes.c_void_p()
        _check(driver.cuModuleLoadData(ctypes.byref(module), ctypes.c_char_p(cubin)), "cuModuleLoadData")
        _MODULES[key] = (module, {})
    return _MODULES[key]


def akg_launch(module, name, grid, block, args):
    """Launch kernel ``name`` with ``args`` (tensors are passed as device pointers, ints as int64)."""
    handle, functions = module
    driver = _driver()
    if name not in functions:
        function = ctypes.c_void_p()
        _check(driver.cuModuleGetFunction(ctypes.byref(function), handle, name.encode()), f"cuModuleGetFunction({name})")
        functions[name] = function
    values = [ctypes.c_void_p(a.data_ptr()) if isinstance(a, torch.Tensor) else ctypes.c_int64(a) for a in args]
    pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values])
    stream = torch.cuda.current_stream().cuda_stream
    _check(driver.cuLaunchKernel(functions[name], max(int(grid), 1), 1, 1, int(block), 1, 1, 0,
                                 ctypes.c_void_p(stream), pointers, None), f"launch of {name}")


def akg_check(t, label, dtype, shape):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{label}: expected a tensor, got {type(t).__name__}")
    if t.dtype != dtype or tuple(t.shape) != tuple(shape) or t.device.type != "cuda":
        raise ValueError(f"{label}: expected a cuda {dtype} tensor of shape {tuple(shape)}, "
                         f"got {t.device.type} {t.dtype} {tuple(t.shape)}")


def akg_conform(t, strides):
    """``t`` with exactly the element strides the kernel was generated for (a copy if needed)."""
    if tuple(t.stride()) == tuple(strides) or t.numel() <= 1:
        return t
    out = torch.empty_strided(t.shape, strides, dtype=t.dtype, device=t.device)
    out.copy_(t)
    return out


def akg_aligned(tensors, nbytes):
    return all(t.data_ptr() % nbytes == 0 for t in tensors)


def akg_grid(total, threads):
    # Enough blocks to cover the work, capped: the kernels loop over whatever is left (grid stride).
    return max(1, min((int(total) + threads - 1) // threads, 1 << 20))
