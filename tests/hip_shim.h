// Lets nvcc syntax-check kernels rendered in the HIP dialect (no hipcc here): HIP's maskless
// shuffles become CUDA's full-warp ones. It proves the text compiles, not that it runs on AMD GPUs.
#define AKG_HIP_SHIM 1
#define __shfl_xor(v, o, w) __shfl_xor_sync(0xffffffffu, (v), (o))
#define __shfl_up(v, o, w) __shfl_up_sync(0xffffffffu, (v), (o))
#define __shfl(v, l, w) __shfl_sync(0xffffffffu, (v), (l))
