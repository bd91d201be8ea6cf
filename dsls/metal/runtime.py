"""The runtime a metal candidate carries (embedded in best.py): the Metal library compiled once
per process by ``torch.mps.compile_shader``, plus input checks. Needs only torch on macOS."""
import torch

_LIBRARIES = {}


def akg_library(source):
    if source not in _LIBRARIES:
        _LIBRARIES[source] = torch.mps.compile_shader(source)
    return _LIBRARIES[source]


def akg_check(t, label, dtype, shape):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{label}: expected a tensor, got {type(t).__name__}")
    if t.dtype != dtype or tuple(t.shape) != tuple(shape) or t.device.type != "mps":
        raise ValueError(f"{label}: expected an mps {dtype} tensor of shape {tuple(shape)}, "
                         f"got {t.device.type} {t.dtype} {tuple(t.shape)}")


def akg_conform(t, strides):
    """``t`` with exactly the element strides the kernel was generated for (a copy if needed)."""
    if tuple(t.stride()) == tuple(strides) or t.numel() <= 1:
        return t
    out = torch.empty_strided(t.shape, strides, dtype=t.dtype, device=t.device)
    out.copy_(t)
    return out
