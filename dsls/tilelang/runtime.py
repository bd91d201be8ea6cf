"""The runtime a tilelang candidate carries (embedded verbatim in best.py): each group's TileLang
program is compiled once per process by ``tilelang.compile`` (which also keeps a disk cache keyed
by the program, under TILELANG_CACHE_DIR) and called on flat views of the tensors.
It needs only torch and tilelang.
"""
import torch
import tilelang
import tilelang.language as T

_AKG_KERNELS = {}
# TileLang's GPU code may load a flat buffer in 16-byte vectors: views starting elsewhere are copied.
_AKG_ALIGN = 16


def akg_kernel(key, program, target):
    kernel = _AKG_KERNELS.get(key)
    if kernel is None:
        kernel = tilelang.compile(program(), target=target)
        _AKG_KERNELS[key] = kernel
    return kernel


def akg_check(t, label, dtype, shape, device):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{label}: expected a tensor, got {type(t).__name__}")
    if t.dtype != dtype or tuple(t.shape) != tuple(shape) or t.device.type != device:
        raise ValueError(f"{label}: expected a {device} {dtype} tensor of shape {tuple(shape)}, "
                         f"got {t.device.type} {t.dtype} {tuple(t.shape)}")


def akg_conform(t, strides):
    """``t`` with exactly the element strides the program was generated for (a copy if needed)."""
    if (tuple(t.stride()) == tuple(strides) or t.numel() <= 1) and t.data_ptr() % _AKG_ALIGN == 0:
        return t
    out = torch.empty_strided(t.shape, strides, dtype=t.dtype, device=t.device)
    out.copy_(t)
    return out


def akg_flat(t, strides, span):
    """The flat buffer a program indexes: ``span`` elements from ``t``'s first one (bool as uint8)."""
    t = akg_conform(t, strides)
    return (t.view(torch.uint8) if t.dtype == torch.bool else t).as_strided((span,), (1,))


def akg_tile(t, shape, strides):
    """A matmul input as the contiguous (batch, rows, cols) tensor T.copy reads tiles of."""
    return t.as_strided(shape, strides).contiguous()
