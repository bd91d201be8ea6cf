"""The runtime a hip candidate carries (embedded verbatim in best.py): hiprtc compiles the HIP
source to a code object for the GPU present (gfx942 on MI300X), cached on disk by the hash of
source, options and architecture; the HIP module API loads and launches it on torch's current
stream. Needs only torch for ROCm (which ships libhiprtc and libamdhip64), through ctypes.
"""
import ctypes
import glob
import hashlib
import os
import tempfile

import torch


class AkgHipError(RuntimeError):
    pass


_RTC = None
_HIP = None
_MODULES = {}
_OPTIONS = ("-std=c++17", "-O3")


def _load(names, what):
    roots = [os.path.join(os.path.dirname(torch.__file__), "lib"), os.environ.get("ROCM_PATH", "/opt/rocm") + "/lib"]
    errors = []
    for name in names:
        for path in [p for root in roots for p in sorted(glob.glob(os.path.join(root, name + "*")))] + [name]:
            try:
                return ctypes.CDLL(path)
            except OSError as error:
                errors.append(str(error))
    raise AkgHipError(f"{what} not found (install torch for ROCm); tried: " + "; ".join(errors[-3:]))


def akg_hiprtc():
    global _RTC
    if _RTC is None:
        _RTC = _load(["libhiprtc.so"], "libhiprtc")
    return _RTC


def _hip():
    global _HIP
    if _HIP is None:
        _HIP = _load(["libamdhip64.so"], "libamdhip64")
        _HIP.hipModuleLaunchKernel.argtypes = [ctypes.c_void_p] + [ctypes.c_uint] * 6 + [
            ctypes.c_uint, ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p]
    return _HIP


def akg_arch():
    return torch.cuda.get_device_properties(torch.cuda.current_device()).gcnArchName.split(":")[0]


def akg_compile(source, arch):
    rtc = akg_hiprtc()
    prog = ctypes.c_void_p()
    if rtc.hiprtcCreateProgram(ctypes.byref(prog), source.encode(), b"akg.hip", 0, None, None):
        raise AkgHipError("hiprtcCreateProgram failed")
    try:
        options = [o.encode() for o in _OPTIONS + (f"--offload-arch={arch}",)]
        array = (ctypes.c_char_p * len(options))(*options)
        if rtc.hiprtcCompileProgram(prog, len(options), array):
            size = ctypes.c_size_t()
            rtc.hiprtcGetProgramLogSize(prog, ctypes.byref(size))
            log = ctypes.create_string_buffer(size.value)
            rtc.hiprtcGetProgramLog(prog, log)
            raise AkgHipError("hiprtc: " + log.value.decode(errors="replace").strip())
        size = ctypes.c_size_t()
        if rtc.hiprtcGetCodeSize(prog, ctypes.byref(size)):
            raise AkgHipError("hiprtcGetCodeSize failed")
        code = ctypes.create_string_buffer(size.value)
        if rtc.hiprtcGetCode(prog, code):
            raise AkgHipError("hiprtcGetCode failed")
        return code.raw
    finally:
        rtc.hiprtcDestroyProgram(ctypes.byref(prog))


def akg_cache_path(source, arch):
    root = os.environ.get("AKG_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "akg")
    key = hashlib.sha256("\0".join((source, arch) + _OPTIONS).encode()).hexdigest()[:32]
    return os.path.join(root, "hip", key + ".hsaco")


def akg_build(source, arch):
    path = akg_cache_path(source, arch)
    if os.path.exists(path):
        with open(path, "rb") as f:
            return f.read()
    code = akg_compile(source, arch)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(code)
    os.replace(tmp, path)
    return code


def _check(status, what):
    if status:
        raise AkgHipError(f"{what} failed with HIP error {status}")


def akg_load(source):
    device = torch.cuda.current_device()
    key = (source, device)
    if key not in _MODULES:
        torch.empty(1, device="cuda")  # torch sets up the device's context
        module = ctypes.c_void_p()
        _check(_hip().hipModuleLoadData(ctypes.byref(module), ctypes.c_char_p(akg_build(source, akg_arch()))),
               "hipModuleLoadData")
        _MODULES[key] = (module, {})
    return _MODULES[key]


def akg_launch(module, name, grid, block, args):
    handle, functions = module
    hip = _hip()
    if name not in functions:
        function = ctypes.c_void_p()
        _check(hip.hipModuleGetFunction(ctypes.byref(function), handle, name.encode()), f"hipModuleGetFunction({name})")
        functions[name] = function
    values = [ctypes.c_void_p(a.data_ptr()) if isinstance(a, torch.Tensor) else ctypes.c_int64(a) for a in args]
    pointers = (ctypes.c_void_p * len(values))(*[ctypes.cast(ctypes.byref(v), ctypes.c_void_p) for v in values])
    stream = torch.cuda.current_stream().cuda_stream
    _check(hip.hipModuleLaunchKernel(functions[name], max(int(grid), 1), 1, 1, int(block), 1, 1, 0,
                                     ctypes.c_void_p(stream), pointers, None), f"launch of {name}")


def akg_check(t, label, dtype, shape):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{label}: expected a tensor, got {type(t).__name__}")
    if t.dtype != dtype or tuple(t.shape) != tuple(shape) or t.device.type != "cuda":
        raise ValueError(f"{label}: expected a GPU {dtype} tensor of shape {tuple(shape)}, "
                         f"got {t.device.type} {t.dtype} {tuple(t.shape)}")


def akg_conform(t, strides):
    if tuple(t.stride()) == tuple(strides) or t.numel() <= 1:
        return t
    out = torch.empty_strided(t.shape, strides, dtype=t.dtype, device=t.device)
    out.copy_(t)
    return out


def akg_aligned(tensors, nbytes):
    return all(t.data_ptr() % nbytes == 0 for t in tensors)


def akg_grid(total, threads):
    return max(1, min((int(total) + threads - 1) // threads, 1 << 20))
