"""akg's built-in passes: decompose (graph), fuse and lower (plan)."""
from akg.plugins import hookimpl


@hookimpl
def akg_passes():
    from akg.passes.decompose import DecomposePass
    from akg.passes.fuse import FusePass
    from akg.passes.dead_code import DeadCodePass
    from akg.passes.lower import LowerPass
    from akg.passes.fold_affine import FoldAffinePass
    from akg.passes.fold_batchnorm import FoldBatchNormPass
    from akg.passes.fold_reduction import FoldReductionPass
    from akg.passes.merge_clamps import MergeClampsPass
    from akg.passes.conv_bias import ConvBiasPass
    from akg.passes.reshape_epilogue import ReshapeEpiloguePass
    return [DecomposePass(), FoldBatchNormPass(), FoldAffinePass(), MergeClampsPass(), FoldReductionPass(), ConvBiasPass(), ReshapeEpiloguePass(), DeadCodePass(),
            FusePass(), LowerPass()]
