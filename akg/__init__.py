"""akg: verified, measured kernels from PyTorch programs."""
__version__ = "0.1.0"
