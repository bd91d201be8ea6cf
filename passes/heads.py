"""Kernel specs from finished groups, and the heads of matmul, convolution and pool groups."""
from __future__ import annotations

from akg import ir
from akg.passes import exprs
from akg.passes.fuse import _Group, _JoinFailed, collapse, domain_strides


def _pair(v, default) -> tuple[int, int]:
    if v is None or v == []:
        return default
    if isinstance(v, int):
        return (v, v)
    return (v[0], v[0]) if len(v) == 1 else (int(v[0]), int(v[1]))


def _resolved(fuser, value: str) -> tuple[str, tuple[int, ...]]:
    found = fuser.layouts.resolve(value)
    if found is None:
        raise _JoinFailed(value)
    return found


def _operand_over(fuser, value: str, dmap: tuple, rank: int) -> ir.Operand:
    base, strides = _resolved(fuser, value)
    over = domain_strides(fuser.types[value].shape, strides, dmap, rank)
    return ir.Operand(base, fuser.layouts.type_of(base), over)


def matmul_head(fuser, node: ir.Node) -> _Group:
    """A matmul group: the product is ``Acc()``; addmm/linear biases start the epilogue."""
    kind = node.op.split(".")[1]
    args, kwargs = node.attr("args", ()), dict(node.attr("kwargs", ()))
    refs = [a.name if isinstance(a, ir.ValueRef) else a for a in args]
    bias, beta, alpha = None, 1, 1
    if kind in ("mm", "bmm", "matmul"):
        a, b, b_transposed = refs[0], refs[1], False
    elif kind == "addmm":
        bias, a, b, b_transposed = refs[0], refs[1], refs[2], False
        beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
    elif kind == "linear":
        a, b, b_transposed = refs[0], refs[1], True
        bias = refs[2] if len(refs) > 2 else kwargs.get("bias")
    else:
        raise _JoinFailed(node.id)
    ta, tb, out = fuser.types[a], fuser.types[b], node.outputs[0]
    rank, b_rank = len(ta.shape), len(tb.shape)
    if rank not in (2, 3) or b_rank not in (2, rank) or (b_transposed and b_rank != 2):
        raise _JoinFailed(node.id)
    k = ta.shape[-1]
    m, n = ta.shape[-2], (tb.shape[0] if b_transposed else tb.shape[-1])
    batch = ta.shape[0] if rank == 3 else 1
    a_map = (0, 1, 2) if rank == 3 else (1, 2)
    # b's dims walk (k, n), or (n, k) for a linear weight; a 2-d b is shared by every batch
    # (stride 0), so linear / matmul on (batch, rows, k) inputs need no reshape.
    b_map = (2, 1) if b_transposed else (0, 1, 2) if b_rank == 3 else (1, 2)
    g = _Group("matmul", (batch, m, n))
    g.head = (batch, m, n, k, _operand_over(fuser, a, a_map, 3), _operand_over(fuser, b, b_map, 3))
    out_t = fuser.types[out]
    g.maps[out] = (0, 1, 2) if len(out_t.shape) == 3 else (1, 2)
    expr: ir.Expr = ir.Acc("float32")
    if alpha != 1:
        expr = ir.Call("mul", (expr, exprs.const(alpha, "float32")), "float32")
    if bias is not None:
        b_shape = fuser.types[bias].shape
        offset = len(out_t.shape) - len(b_shape)
        g.operands.append(_operand_over(fuser, bias, tuple(g.maps[out][i + offset] for i in range(len(b_shape))), 3))
        load = exprs.cast(ir.Load(0, fuser.types[bias].dtype), "float32")
        if beta != 1:
            load = ir.Call("mul", (load, exprs.const(beta, "float32")), "float32")
        expr = ir.Call("add", (expr, load), "float32")
    g.exprs[out] = exprs.cast(expr, out_t.dtype)
    g.nodes.append(node.id)
    return g


_CONV_SPATIAL = {"conv1d": 1, "conv2d": 2, "conv3d": 3}


def _spatial(v, d: int, default: int) -> tuple[int, ...] | None:
    """A stride / padding / dilation argument as one int a spatial dim; None when it is not ints."""
    if v is None or v == []:
        return (default,) * d
    if isinstance(v, int):
        return (v,) * d
    v = tuple(v)
    if not all(isinstance(x, int) for x in v) or len(v) not in (1, d):
        return None
    return v * d if len(v) == 1 else v


def conv_arguments(node: ir.Node) -> tuple | None:
    """(x, weight, bias, stride, padding, dilation) of a forward convolution with one group, or
    None for what the conv_epilogue family does not compute (transposed, grouped, keyword args)."""
    kind = node.op.split(".")[1]
    args = list(node.attr("args", ())) + [None] * 9
    if node.attr("kwargs") or not isinstance(args[0], ir.ValueRef) or not isinstance(args[1], ir.ValueRef):
        return None
    if kind == "convolution":
        stride, padding, dilation, transposed, groups = args[3], args[4], args[5], args[6], args[8]
        if transposed or any(p for p in (args[7] or [])):
            return None
    elif kind in _CONV_SPATIAL:
        stride, padding, dilation, groups = args[3], args[4], args[5], args[6]
    else:
        return None
    if groups not in (None, 1):
        return None
    return args[0].name, args[1].name, args[2], stride, padding, dilation


def _conv_padding(padding, kernel: tuple[int, ...], dilation: tuple[int, ...]) -> tuple[int, ...] | None:
    """Padding before each spatial dim. "same" pads dilation * (k - 1) // 2 before, as torch does
    (the odd element after falls outside the input and is masked like any padding)."""
    if padding == "valid":
        return (0,) * len(kernel)
    if padding == "same":
        return tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
    return _spatial(padding, len(kernel), 0)


def conv_head(fuser, node: ir.Node) -> _Group:
    """A convolution group: the convolution sum is ``Acc()``; its bias starts the epilogue."""
    parsed = conv_arguments(node)
    if parsed is None or len(node.outputs) != 1:
        raise _JoinFailed(node.id)
    x, w, bias, stride, padding, dilation = parsed
    tx, tw, out_t = fuser.types[x], fuser.types[w], fuser.types[node.outputs[0]]
    d = len(tw.shape) - 2
    if not 1 <= d <= 3 or len(tx.shape) != d + 2 or len(out_t.shape) != d + 2 or tx.dtype != tw.dtype \
            or tx.dtype not in ir.FLOAT_DTYPES or tx.dtype == "float64":
        raise _JoinFailed(node.id)
    stride, dilation = _spatial(stride, d, 1), _spatial(dilation, d, 1)
    pad = _conv_padding(padding, tw.shape[2:], dilation) if dilation is not None else None
    if stride is None or dilation is None or pad is None:
        raise _JoinFailed(node.id)
    rank = len(out_t.shape)
    g = _Group("conv", out_t.shape)
    x_base, x_strides = _resolved(fuser, x)
    w_base, w_strides = _resolved(fuser, w)
    g.head = dict(input=ir.Operand(x_base, fuser.layouts.type_of(x_base), x_strides),
                  weight=ir.Operand(w_base, fuser.layouts.type_of(w_base), w_strides),
                  in_shape=tx.shape, weight_shape=tw.shape, out_shape=out_t.shape,
                  stride=stride, padding=pad, dilation=dilation)
    out = node.outputs[0]
    g.maps[out] = tuple(range(rank))
    expr: ir.Expr = ir.Acc("float32")
    if isinstance(bias, ir.ValueRef):
        if fuser.types[bias.name].shape != (out_t.shape[1],):
            raise _JoinFailed(node.id)
        g.operands.append(_operand_over(fuser, bias.name, (1,), rank))
        expr = ir.Call("add", (expr, exprs.cast(ir.Load(0, fuser.types[bias.name].dtype), "float32")), "float32")
    elif bias is not None:
        raise _JoinFailed(node.id)
    g.exprs[out] = exprs.cast(expr, out_t.dtype)
    g.nodes.append(node.id)
    return g


def pool_prologue(fuser, node: ir.Node):
    """(group, value) when the open pointwise group computes the pool's input over exactly its
    shape and nothing outside the pool reads what the group computes: the group becomes the
    pool's prologue. None otherwise."""
    g, x = fuser.open, node.inputs[0]
    if g is None or g.kind != "pointwise" or not g.has(x) or x in fuser.graph.outputs:
        return None
    shape = fuser.types[x].shape
    if len(shape) != 4 or g.domain != shape or g.maps[x] != (0, 1, 2, 3):
        return None
    members = set(g.nodes)
    for v in g.exprs:
        if v in fuser.graph.outputs or any(c.id not in members and c.id != node.id for c in fuser.consumers.get(v, [])):
            return None
    full = [op for op in g.operands if op.type.shape == shape and all(op.strides[d] != 0 for d in range(4) if shape[d] > 1)]
    if not full:
        return None
    return g, x, full[0]


def pool_head(fuser, node: ir.Node, prologue=None) -> _Group:
    kind = node.op.split(".")[1]
    args = list(node.attr("args", ())) + [None] * 7
    x, out = node.inputs[0], node.outputs[0]
    if kind not in ("max_pool2d", "avg_pool2d") or len(fuser.types[x].shape) != 4 or node.attr("kwargs"):
        raise _JoinFailed(node.id)
    kernel = _pair(args[1], None)
    stride = _pair(args[2], kernel)
    padding = _pair(args[3], (0, 0))
    if kind == "max_pool2d":
        dilation, ceil_mode, include_pad, divisor = _pair(args[4], (1, 1)), args[5], True, None
    else:
        dilation, ceil_mode = (1, 1), args[4]
        include_pad = True if args[5] is None else bool(args[5])
        divisor = args[6]
    if ceil_mode:
        raise _JoinFailed(node.id)
    out_t = fuser.types[out]
    g = _Group("pool", out_t.shape)
    if prologue is None:
        base, strides = _resolved(fuser, x)
        source = dict(input=ir.Operand(base, fuser.layouts.type_of(base), strides))
    else:
        before, value, full = prologue
        source = dict(input=full, prologue=before.exprs[value], prologue_operands=tuple(before.operands))
        g.nodes.extend(before.nodes)
    g.head = dict(op="max" if kind == "max_pool2d" else "avg", out_shape=out_t.shape, in_shape=fuser.types[x].shape,
                  kernel=kernel, stride=stride, padding=padding, dilation=dilation,
                  count_include_pad=include_pad, divisor_override=divisor, **source)
    g.exprs[out] = exprs.cast(ir.Acc("float32"), out_t.dtype)
    g.maps[out] = (0, 1, 2, 3)
    g.nodes.append(node.id)
    return g


def _outputs(fuser, g: _Group, needed: list[str]) -> list[ir.Output]:
    outs = []
    for v in needed:
        t = fuser.types[v]
        contiguous = ir.contiguous_strides(t.shape)
        strides = domain_strides(t.shape, contiguous, g.maps[v], len(g.domain))
        outs.append(ir.Output(v, g.exprs[v], ir.TensorType(t.shape, t.dtype, contiguous), strides, v in g.reduced))
    return outs


def build_kernel(fuser, g: _Group, needed: list[str]):
    """(kernel spec, family) for a finished group."""
    outs = _outputs(fuser, g, needed)
    if g.kind == "matmul":
        batch, m, n, k, a, b = g.head
        return ir.MatmulKernel(batch, m, n, k, a, b, tuple(g.operands), tuple(outs)), "matmul_epilogue"
    if g.kind == "conv":
        return ir.ConvKernel(operands=tuple(g.operands), outputs=tuple(outs), **g.head), "conv_epilogue"
    if g.kind == "pool":
        family = "pool" if g.head.get("prologue") is None else "pool_prologue"
        return ir.PoolKernel(operands=tuple(g.operands), outputs=tuple(outs), **g.head), family
    sets = [op.strides for op in g.operands] + [o.strides for o in outs]
    domain, sets, special = collapse(g.domain, sets, set(g.special))
    n_ops = len(g.operands)
    operands = tuple(ir.Operand(op.value, op.type, s) for op, s in zip(g.operands, sets[:n_ops]))
    outputs = tuple(ir.Output(o.value, o.expr, o.type, s, o.reduced) for o, s in zip(outs, sets[n_ops:]))
    if g.kind == "pointwise":
        return ir.PointwiseKernel(domain, operands, outputs), "pointwise"
    if g.kind == "reduction" and len(special) > 1 and fuser.strategy.nd_reductions:
        dims = sorted(special)
        if dims != list(range(dims[0], dims[0] + len(dims))):
            raise ir.IRError(f"group {g.nodes[0]}: reduce dims {dims} are not adjacent")
        return ir.ReductionKernel(domain, dims[0], operands, tuple(g.stages), outputs, len(dims)), "reduction_nd"
    if len(special) != 1:
        raise ir.IRError(f"group {g.nodes[0]}: reduce/scan dims do not collapse into one")
    dim = special.pop()
    if g.kind == "reduction":
        return ir.ReductionKernel(domain, dim, operands, tuple(g.stages), outputs), "reduction"
    op, expr = g.scan
    return ir.ScanKernel(domain, dim, op, expr, operands, outputs), "scan"
