"""Template contexts for each kernel family: index arithmetic, loads, expressions, the schedule.

Names in generated kernels: operand i is pointer ``p{i}`` and its loaded block ``x{i}``; output j is
pointer ``q{j}``; stage k's result is ``s{k}`` (argmax/argmin: ``s{k}`` value, ``s{k}_i`` index).
"""
from __future__ import annotations

import math

from akg.ir import (Acc, ConvKernel, Expr, FusedGroup, Load, MatmulKernel, Operand, Output, PointwiseKernel,
                    PoolKernel, ReductionKernel, RIndex, ScanKernel, StageRef, walk, FLOAT_DTYPES)
from akg.targets import RenderError
from akg.dsls.triton.exprs import ExprRenderer, literal, tl_dtype
from akg.dsls.triton.layout import collapse, coordinate_lines, needs_int64, offset, transposed_dims
from akg.dsls.triton import schedules as sched


# ----------------------------------------------------------------------------------------------
# shared pieces
# ----------------------------------------------------------------------------------------------

def used_operands(exprs: list[Expr]) -> list[int]:
    return sorted({e.operand for x in exprs for e in walk(x) if isinstance(e, Load)})


def torch_dtype(dtype: str) -> str:
    return f"torch.{dtype}"


def device_expr(reads: list[str], device: str) -> str:
    return f"{reads[0]}.device" if reads else f"torch.device({device!r})"


def alloc_lines(outputs: tuple[Output, ...], dev: str) -> list[str]:
    return [f"o{j} = torch.empty({tuple(o.type.shape)!r}, dtype={torch_dtype(o.type.dtype)}, device={dev})"
            for j, o in enumerate(outputs)]


def launcher_names(group: FusedGroup, n_outputs: int) -> tuple[list[str], list[str]]:
    reads = [f"r{i}" for i in range(len(group.read_values()))]
    writes = [f"o{j}" for j in range(n_outputs)]
    return reads, writes


def store_value(expr_text: str, expr: Expr, dtype: str, shape: str) -> str:
    """The value to store, converted to the output dtype; constant-only expressions are broadcast."""
    has_leaf = any(not hasattr(e, "args") and not hasattr(e, "value") for e in walk(expr))
    value = f"({expr_text}).to({tl_dtype(dtype)})" if has_leaf else f"tl.full({shape}, {expr_text}, {tl_dtype(dtype)})"
    return value


def leaf_namer(loads: str = "x{}", stages: str = "s{}", rindex: str = "r", acc: str = "acc",
               stage_dtypes: dict[int, str] | None = None):
    def name(e: Expr) -> str:
        if isinstance(e, Load):
            return loads.format(e.operand)
        if isinstance(e, StageRef):
            text = stages.format(e.stage) + ("_i" if e.part == "index" else "")
            have = (stage_dtypes or {}).get(e.stage)
            if e.part == "value" and have is not None and have != e.dtype:
                text = f"{text}.to({tl_dtype(e.dtype)})"
            return text
        if isinstance(e, RIndex):
            return rindex
        if isinstance(e, Acc):
            return acc if e.dtype == "float32" else f"{acc}.to({tl_dtype(e.dtype)})"
        raise RenderError(f"unexpected leaf {type(e).__name__}")
    return name


def expr_renderer(device: str, **leaf_names) -> ExprRenderer:
    """Expressions for the GPU, or for Triton's interpreter when the candidate runs on the CPU."""
    return ExprRenderer(leaf_namer(**leaf_names), interpreter=device == "cpu")


# ----------------------------------------------------------------------------------------------
# pointwise
# ----------------------------------------------------------------------------------------------

def pointwise_io(k: PointwiseKernel, device: str, strides, at, shape: str) -> tuple[list[str], list[str]]:
    """Loads of the operands the outputs use and the stores of every output; ``strides`` holds the
    operands' then the outputs' collapsed strides and ``at`` spells one as an offset."""
    n = len(k.operands)
    loads = [f"x{i} = tl.load(p{i} + {at(strides[i])}, mask=mask)" for i in used_operands([o.expr for o in k.outputs])]
    render = expr_renderer(device).render
    stores = [f"tl.store(q{j} + {at(strides[n + j])}, {store_value(render(o.expr), o.expr, o.type.dtype, shape)}, mask=mask)"
              for j, o in enumerate(k.outputs)]
    return loads, stores


MAX_GRID_Y = 65535   # CUDA's limit on a grid's second axis


def tiled_pointwise_context(name: str, group: FusedGroup, device: str, lay, n_operands: int) -> dict:
    k: PointwiseKernel = group.kernel
    s = group.schedule
    dims = transposed_dims(lay.sizes, lay.strides[:n_operands], lay.strides[n_operands:])
    if dims is None:
        raise RenderError("tiled variant: no operand is read transposed to the outputs")
    y, x = dims
    if math.ceil(lay.sizes[y] / s.get("YBLOCK", 64)) > MAX_GRID_Y:
        raise RenderError(f"tiled variant: {lay.sizes[y]} rows of tiles exceed the grid's second axis")
    rest = [d for d in range(len(lay.sizes)) if d not in (y, x)]
    coords = {d: f"c{d}" for d in rest}
    coords[y], coords[x] = "yy", "xx"
    names = [coords[d] for d in range(len(lay.sizes))]
    loads, stores = pointwise_io(k, device, lay.strides, lambda strides: offset(names, strides), "[YBLOCK, XBLOCK]")
    reads, writes = launcher_names(group, len(k.outputs))
    xblock, yblock = s.get("XBLOCK", 64), s.get("YBLOCK", 64)
    tensors = [op.strides for op in k.operands] + [o.strides for o in k.outputs]
    return dict(
        template="pointwise_tiled", name=name, reads=reads, writes=writes,
        params=[f"p{i}" for i in range(len(k.operands))] + [f"q{j}" for j in range(len(k.outputs))],
        args=reads + writes, wide=needs_int64(k.domain, tensors),
        rest_coords=coordinate_lines("rest", tuple(lay.sizes[d] for d in rest), "r_"),
        rest_names=[(f"c{d}", f"r_{i}") for i, d in enumerate(rest)],
        loads=loads, stores=stores, allocs=alloc_lines(k.outputs, device_expr(reads, device)),
        X=lay.sizes[x], Y=lay.sizes[y], x_tiles=math.ceil(lay.sizes[x] / xblock), y_tiles=math.ceil(lay.sizes[y] / yblock),
        rest_count=math.prod(lay.sizes[d] for d in rest), xblock=xblock, yblock=yblock, num_warps=s.get("num_warps", 4),
    )


def pointwise_context(name: str, group: FusedGroup, device: str) -> dict:
    k: PointwiseKernel = group.kernel
    s = group.schedule
    tensors = [op.strides for op in k.operands] + [o.strides for o in k.outputs]
    lay = collapse(k.domain, tensors)
    if s.get("variant") == "tiled":
        return tiled_pointwise_context(name, group, device, lay, len(k.operands))
    coords = [f"c{d}" for d in range(len(lay.sizes))]

    def at(strides) -> str:
        # A 0-d tensor's offset is 0; it must still be a block, like the mask, for tl.load/tl.store.
        text = offset(coords, strides)
        return "offs * 0" if text == "0" else text

    loads, stores = pointwise_io(k, device, lay.strides, at, "[BLOCK]")
    reads, writes = launcher_names(group, len(k.outputs))
    numel = math.prod(k.domain)
    return dict(
        name=name, reads=reads, writes=writes,
        params=[f"p{i}" for i in range(len(k.operands))] + [f"q{j}" for j in range(len(k.outputs))],
        args=reads + writes, wide=needs_int64(k.domain, tensors),
        coords=coordinate_lines("offs", lay.sizes, "c"), loads=loads, stores=stores,
        allocs=alloc_lines(k.outputs, device_expr(reads, device)), numel=numel,
        block=s.get("BLOCK", 1024), num_warps=s.get("num_warps", 4),
    )


# ----------------------------------------------------------------------------------------------
# row-wise families: reduction and scan
# ----------------------------------------------------------------------------------------------

_COMBINE = {"sum": "_akg_add", "prod": "_akg_mul", "max": "_akg_max", "min": "_akg_min"}


def accumulator_dtype(op: str, dtype: str) -> str:
    """Accumulate half floats in fp32 and integer sums/products in int64, as torch does."""
    if dtype in ("float16", "bfloat16", "float32"):
        return "float32"
    if dtype == "float64":
        return dtype
    if op in ("sum", "prod"):
        return "int64"
    return "int32" if dtype == "bool" else dtype


def identity(op: str, dtype: str) -> str:
    floating = dtype in FLOAT_DTYPES
    if op == "sum":
        return "0.0" if floating else "0"
    if op == "prod":
        return "1.0" if floating else "1"
    largest = 'float("inf")' if floating else str({"int64": 2**63 - 1, "int32": 2**31 - 1, "int16": 2**15 - 1,
                                                    "int8": 127, "uint8": 255}[dtype])
    smallest = 'float("-inf")' if floating else str({"int64": -2**63, "int32": -2**31, "int16": -2**15,
                                                       "int8": -128, "uint8": 0}[dtype])
    return smallest if op in ("max", "argmax") else largest


class RowLayout:
    """Rows = the domain without the reduced (scanned) dims, collapsed; per-tensor row base pointers
    ``b{i}`` (operands) and ``bq{j}`` (outputs), and per-tensor strides along the reduced dims.
    Several reduced dims (``rank`` > 1) are walked by one flat index ``r``; each tensor collapses
    them on its own, so only a tensor that walks them unevenly (a per-channel weight inside a
    group norm's row) pays a division for its offset."""

    def __init__(self, domain, dim, operands, outputs, rank: int = 1):
        rdims = list(range(dim, dim + rank))
        self.size = math.prod(domain[d] for d in rdims)
        row_dims = [d for d in range(len(domain)) if d not in rdims]
        tensors = [op.strides for op in operands] + [o.strides for o in outputs]
        self.layout = collapse(tuple(domain[d] for d in row_dims), [tuple(t[d] for d in row_dims) for t in tensors])
        self.n_rows = math.prod(self.layout.sizes) if self.layout.sizes else 1
        self.n_operands = len(operands)
        self.rwalk = [collapse(tuple(domain[d] for d in rdims), [tuple(t[d] for d in rdims)]) for t in tensors]
        self.wide = needs_int64(domain, tensors)

    def setup_lines(self) -> list[str]:
        lines = coordinate_lines("rows", self.layout.sizes, "c")
        coords = [f"c{d}" for d in range(len(self.layout.sizes))]
        for t, strides in enumerate(self.layout.strides):
            off = offset(coords, strides)
            off = "rows * 0" if off == "0" else off
            base = f"b{t}" if t < self.n_operands else f"bq{t - self.n_operands}"
            ptr = f"p{t}" if t < self.n_operands else f"q{t - self.n_operands}"
            lines.append(f"{base} = {ptr} + {off}")
        return lines

    def along(self, base: str, t: int) -> str:
        walk = self.rwalk[t]
        if len(walk.sizes) > 1:   # reduced dims this tensor cannot walk with one stride
            coords = [c.split(" = ", 1)[1] for c in coordinate_lines("r", walk.sizes, "_")]
            return f"{base} + {offset(coords, walk.strides[0])}"
        s = walk.strides[0][0] if walk.sizes else 0
        return base if s == 0 else f"{base} + r" if s == 1 else f"{base} + r * {s}"

    def load(self, i: int) -> str:
        return f"x{i} = tl.load({self.along(f'b{i}', i)}, mask=m, other=0)"

    def store(self, j: int, value: str) -> str:
        return f"tl.store({self.along(f'bq{j}', self.n_operands + j)}, {value}, mask=m)"


def chunk_header(looped: bool, size: int, span: tuple[str, str] | None = None) -> list[str]:
    """The loop (or single chunk) over the reduced dim; ``span`` limits a loop to a slice of it
    (a split reduction's program covers ``[start, stop)``)."""
    head = ["r = rbase", f"m = rmask & (r < {size})"]
    start, stop = span or ("0", str(size))
    return [f"for r0 in range({start}, {stop}, RBLOCK):", "    r = r0 + rbase", f"    m = rmask & (r < {size})"] if looped else head


def indent(lines: list[str], looped: bool) -> list[str]:
    return ["    " + line for line in lines] if looped else lines


def online_softmax_pairs(stages) -> dict[int, int]:
    """Stage pairs (k, k+1) with k = max(a) and k+1 = sum(exp(a - s_k)): they fuse into one pass
    with a running max and a rescaled running sum (online softmax / logsumexp)."""
    pairs = {}
    for k in range(len(stages) - 1):
        first, second = stages[k], stages[k + 1]
        if first.op != "max" or second.op != "sum" or k in pairs.values():
            continue
        e = second.expr
        if getattr(e, "op", None) == "exp" and getattr(e.args[0], "op", None) == "sub":
            a, ref = e.args[0].args
            if a == first.expr and isinstance(ref, StageRef) and ref.stage == k and ref.part == "value":
                pairs[k] = k + 1
    return pairs


class ReductionBody:
    """The statements of one reduction kernel for a variant ("persistent" or "looped")."""

    def __init__(self, k: ReductionKernel, rows: RowLayout, looped: bool, online: bool, device: str,
                 span: tuple[str, str] | None = None):
        self.k, self.rows, self.looped, self.device, self.span = k, rows, looped, device, span
        self.pairs = online_softmax_pairs(k.stages) if (looped and online) else {}
        self.acc_dtypes = {i: accumulator_dtype(st.op, st.expr.dtype) for i, st in enumerate(k.stages)}
        self.render = expr_renderer(device, stage_dtypes=self.acc_dtypes).render
        # A persistent row block is loaded once: later stages and the outputs reuse the registers.
        self.loaded: set[int] = set()

    def lines(self) -> list[str]:
        return self.stage_lines() + self.reduced_outputs() + self.full_outputs()

    def stage_lines(self) -> list[str]:
        """Every stage, ending with its row result ``s{k}`` (``[ROWS, 1]``)."""
        out: list[str] = []
        k = 0
        while k < len(self.k.stages):
            if k in self.pairs:
                out += self.online_pair(k)
                k += 2
            else:
                out += self.stage(k)
                k += 1
        return out

    def chunks(self) -> list[str]:
        return chunk_header(True, self.rows.size, self.span)

    def loads(self, exprs: list[Expr]) -> list[str]:
        wanted = used_operands(exprs)
        if self.looped:
            return [self.rows.load(i) for i in wanted]
        fresh = [i for i in wanted if i not in self.loaded]
        self.loaded.update(fresh)
        return [self.rows.load(i) for i in fresh]

    def masked(self, k: int) -> str:
        st = self.k.stages[k]
        acc = self.acc_dtypes[k]
        return f"tl.where(m, ({self.render(st.expr)}).to({tl_dtype(acc)}), {identity(st.op, acc)})"

    def stage(self, k: int) -> list[str]:
        st, acc = self.k.stages[k], self.acc_dtypes[k]
        ident = identity(st.op, acc)
        if not self.looped:
            header = [] if self.loaded else chunk_header(False, self.rows.size)
            lines = header + self.loads([st.expr]) + [f"e{k} = {self.masked(k)}"]
            return lines + self.finish(k, f"e{k}", "r")
        loads = self.loads([st.expr])
        init = [f"a{k} = tl.full([ROWS, RBLOCK], {ident}, {tl_dtype(acc)})"]
        if st.op in ("argmax", "argmin"):
            cmp = ">" if st.op == "argmax" else "<"
            init.append(f"a{k}_i = tl.full([ROWS, RBLOCK], 0, tl.int32)")
            # Strictly better values only, so each lane keeps its first occurrence; NaN wins like in torch.
            update = [f"e = {self.masked(k)}", f"better = (e {cmp} a{k}) | ((e != e) & (a{k} == a{k}))",
                      f"a{k}_i = tl.where(better, r, a{k}_i)", f"a{k} = tl.where(better, e, a{k})"]
        else:
            update = [f"a{k} = {_COMBINE[st.op]}(a{k}, {self.masked(k)})"]
        body = self.chunks() + indent(loads + update, True)
        return init + body + self.finish(k, f"a{k}", f"a{k}_i")

    def finish(self, k: int, values: str, index: str) -> list[str]:
        op = self.k.stages[k].op
        if op in ("argmax", "argmin"):
            idx = f"tl.broadcast_to({index}, [ROWS, RBLOCK])"
            return [f"s{k}, s{k}_i = tl.reduce(({values}, {idx}), 1, _akg_{op}_combine, keep_dims=True)",
                    f"s{k}_i = s{k}_i.to(tl.int64)"]
        if op == "sum":
            return [f"s{k} = tl.reduce({values}, 1, _akg_add, keep_dims=True)"]
        return [f"s{k} = tl.reduce({values}, 1, {_COMBINE[op]}, keep_dims=True)"]

    def online_pair(self, k: int) -> list[str]:
        st = self.k.stages[k]
        loads = self.loads([st.expr])
        update = [f"e = tl.where(m, ({self.render(st.expr)}).to(tl.float32), float(\"-inf\"))",
                  f"top = tl.maximum(a{k}, e)",
                  # A lane that has seen only padding keeps max -inf; exp(-inf - -inf) would be NaN.
                  f"scale = tl.where(top == float(\"-inf\"), 0.0, tl.exp(a{k} - top))",
                  f"a{k + 1} = a{k + 1} * scale + tl.where(m, tl.exp(e - top), 0.0)",
                  f"a{k} = top"]
        return ([f"a{k} = tl.full([ROWS, RBLOCK], float(\"-inf\"), tl.float32)",
                 f"a{k + 1} = tl.full([ROWS, RBLOCK], 0.0, tl.float32)"]
                + self.chunks() + indent(loads + update, True)
                + [f"s{k} = tl.reduce(a{k}, 1, _akg_max, keep_dims=True)",
                   f"s{k + 1} = tl.reduce(a{k + 1} * tl.exp(a{k} - s{k}), 1, _akg_add, keep_dims=True)"])

    def reduced_outputs(self) -> list[str]:
        outs = [(j, o) for j, o in enumerate(self.k.outputs) if o.reduced]
        render = expr_renderer(self.device, loads="y{}", stage_dtypes=self.acc_dtypes).render
        lines = [f"y{i} = tl.load(b{i}, mask=rmask)" for i in used_operands([o.expr for _, o in outs])]
        for j, o in outs:
            value = store_value(render(o.expr), o.expr, o.type.dtype, "[ROWS, 1]")
            lines.append(f"tl.store(bq{j}, {value}, mask=rmask)")
        return lines

    def full_outputs(self) -> list[str]:
        outs = [(j, o) for j, o in enumerate(self.k.outputs) if not o.reduced]
        if not outs:
            return []
        body = self.loads([o.expr for _, o in outs])
        for j, o in outs:
            body.append(self.rows.store(j, store_value(self.render(o.expr), o.expr, o.type.dtype, "[ROWS, RBLOCK]")))
        header = chunk_header(True, self.rows.size) if self.looped else ([] if self.loaded else chunk_header(False, self.rows.size))
        return header + indent(body, self.looped)


def rowwise_context(name: str, group: FusedGroup, device: str, rows: RowLayout, body: list[str],
                    looped: bool) -> dict:
    k, s = group.kernel, group.schedule
    reads, writes = launcher_names(group, len(k.outputs))
    rblock = s.get("RBLOCK") or sched.next_pow2(rows.size)
    if not looped and rblock < rows.size:
        raise RenderError(f"persistent variant needs RBLOCK >= {rows.size}, schedule has {rblock}")
    return dict(
        name=name, reads=reads, writes=writes, args=reads + writes,
        params=[f"p{i}" for i in range(len(k.operands))] + [f"q{j}" for j in range(len(k.outputs))],
        wide=rows.wide, n_rows=rows.n_rows, row_setup=rows.setup_lines(), body=body,
        allocs=alloc_lines(k.outputs, device_expr(reads, device)),
        rows_per_program=s.get("ROWS", 1), rblock=rblock, num_warps=s.get("num_warps", 4),
    )


def reduction_context(name: str, group: FusedGroup, device: str) -> dict:
    k: ReductionKernel = group.kernel
    s = group.schedule
    if s.get("variant") == "split":
        return split_reduction_context(name, group, device)
    looped = s.get("variant", "persistent") == "looped"
    rows = RowLayout(k.domain, k.reduce_dim, k.operands, k.outputs, k.reduce_rank)
    body = ReductionBody(k, rows, looped, s.get("online", True), device).lines()
    return rowwise_context(name, group, device, rows, body, looped)


# ----------------------------------------------------------------------------------------------
# split reduction: few long rows are cut into SPLIT slices reduced by separate programs into a
# workspace of partials (``w{k}``: [rows, SPLIT]), then a second kernel combines each row's
# partials and computes the reduced outputs.
# ----------------------------------------------------------------------------------------------

def split_obstacle(k: ReductionKernel) -> str | None:
    """Why a split reduction cannot compute ``k`` (None when it can): every stage must combine
    from independent partials, and every output must need only the finished row results."""
    if any(not o.reduced for o in k.outputs):
        return "an output over the full domain needs each finished row, not partials"
    if k.reduce_rank > 1:
        return "several reduce dims"
    second_of_pair = set(online_softmax_pairs(k.stages).values())
    for i, st in enumerate(k.stages):
        if i not in second_of_pair and any(isinstance(e, StageRef) for e in walk(st.expr)):
            return f"stage {i} ({st.op}) depends on an earlier stage's row result"
    return None


def split_geometry(size: int, split: int, rblock: int) -> tuple[int, int]:
    """(chunk, split): each program covers ``chunk`` elements, a multiple of RBLOCK, and no
    program is left without work."""
    chunk = math.ceil(math.ceil(size / max(split, 1)) / rblock) * rblock
    return chunk, math.ceil(size / chunk)


def workspaces(k: ReductionKernel) -> list[tuple[str, str, str]]:
    """(workspace name, torch dtype, the row value it keeps) per partial: each stage's result,
    and argmax/argmin's index beside its value."""
    out = []
    for i, st in enumerate(k.stages):
        out.append((f"w{i}", torch_dtype(accumulator_dtype(st.op, st.expr.dtype)), f"s{i}"))
        if st.op in ("argmax", "argmin"):
            out.append((f"w{i}_i", "torch.int64", f"s{i}_i"))
    return out


def workspace_allocs(k: ReductionKernel, n_rows: int, split: int, dev: str) -> list[str]:
    return [f"{name} = torch.empty(({n_rows}, {split}), dtype={dtype}, device={dev})" for name, dtype, _ in workspaces(k)]


def partial_stores(k: ReductionKernel) -> list[str]:
    return [f"tl.store({name} + rows * SPLIT + split, {value}, mask=rmask)" for name, _, value in workspaces(k)]


def combine_lines(k: ReductionKernel, acc_dtypes: dict[int, str]) -> list[str]:
    """Each row's partials, combined into the stage results ``s{k}`` the outputs read."""
    pairs = online_softmax_pairs(k.stages)
    lines, i = [], 0
    at = "rows * SPLIT + sp"
    while i < len(k.stages):
        st = k.stages[i]
        ident = identity(st.op, acc_dtypes[i])
        if i in pairs:
            # Partial (max, sum of exp relative to that max) pairs: rescale each sum to the row max.
            lines += [f"pm = tl.load(w{i} + {at}, mask=sm, other=float(\"-inf\"))",
                      f"pl = tl.load(w{i + 1} + {at}, mask=sm, other=0.0)",
                      f"s{i} = tl.reduce(pm, 1, _akg_max, keep_dims=True)",
                      f"s{i + 1} = tl.reduce(tl.where(pm == float(\"-inf\"), 0.0, pl * tl.exp(pm - s{i})), 1, "
                      f"_akg_add, keep_dims=True)"]
            i += 2
            continue
        lines.append(f"p{i}v = tl.load(w{i} + {at}, mask=sm, other={ident})")
        if st.op in ("argmax", "argmin"):
            # Padding slots carry the largest index, so a real partial always wins a tie.
            lines += [f"p{i}i = tl.load(w{i}_i + {at}, mask=sm, other={2**62})",
                      f"s{i}, s{i}_i = tl.reduce((p{i}v, p{i}i), 1, _akg_{st.op}_combine, keep_dims=True)"]
        else:
            lines.append(f"s{i} = tl.reduce(p{i}v, 1, {_COMBINE[st.op]}, keep_dims=True)")
        i += 1
    return lines


def split_reduction_context(name: str, group: FusedGroup, device: str) -> dict:
    k: ReductionKernel = group.kernel
    s = group.schedule
    obstacle = split_obstacle(k)
    if obstacle:
        raise RenderError(f"split variant: {obstacle}")
    rows = RowLayout(k.domain, k.reduce_dim, k.operands, k.outputs)
    rblock = s.get("RBLOCK", 1024)
    chunk, split = split_geometry(rows.size, s.get("SPLIT", 8), rblock)
    body = ReductionBody(k, rows, True, s.get("online", True), device, span=("rstart", "rstart + CHUNK"))
    part = body.stage_lines() + partial_stores(k)
    combine = combine_lines(k, body.acc_dtypes) + body.reduced_outputs()
    context = rowwise_context(name, group, device, rows, part, True)
    reads = context["reads"]
    context.update(
        template="reduction_split", part_body=part, combine_body=combine, workspaces=[name for name, _, _ in workspaces(k)],
        workspace_allocs=workspace_allocs(k, rows.n_rows, split, device_expr(reads, device)),
        split=split, chunk=chunk, sblock=max(sched.next_pow2(split), 2),
    )
    return context


def scan_context(name: str, group: FusedGroup, device: str) -> dict:
    k: ScanKernel = group.kernel
    s = group.schedule
    looped = s.get("variant", "persistent") == "looped"
    rows = RowLayout(k.domain, k.scan_dim, k.operands, k.outputs)
    acc = accumulator_dtype(k.op, k.expr.dtype)
    render = expr_renderer(device, stage_dtypes={0: acc}).render
    ident = identity(k.op, acc)
    loads = [rows.load(i) for i in used_operands([k.expr] + [o.expr for o in k.outputs])]
    scan = {"sum": "tl.associative_scan(e, 1, _akg_add)", "prod": "tl.associative_scan(e, 1, _akg_mul)",
            "max": "tl.associative_scan(e, 1, _akg_max)", "min": "tl.associative_scan(e, 1, _akg_min)"}[k.op]
    step = loads + [f"e = tl.where(m, ({render(k.expr)}).to({tl_dtype(acc)}), {ident})", f"s0 = {scan}"]
    if looped:
        combine = _COMBINE[k.op]
        step += [f"s0 = {combine}(s0, carry)",
                 f"carry = {combine}(carry, tl.reduce(e, 1, {combine}, keep_dims=True))"]
    for j, o in enumerate(k.outputs):
        step.append(rows.store(j, store_value(render(o.expr), o.expr, o.type.dtype, "[ROWS, RBLOCK]")))
    body = ([f"carry = tl.full([ROWS, 1], {ident}, {tl_dtype(acc)})"] if looped else []) \
        + chunk_header(looped, rows.size) + indent(step, looped)
    return rowwise_context(name, group, device, rows, body, looped)


# ----------------------------------------------------------------------------------------------
# pool and matmul: an accumulator, then an epilogue over the output domain
# ----------------------------------------------------------------------------------------------

def epilogue_lines(outputs: tuple[Output, ...], operands: tuple[Operand, ...], coords: list[str],
                   shape: str, device: str) -> list[str]:
    """Loads of the epilogue operands and the stores of every output at coordinates ``coords``."""
    render = expr_renderer(device).render
    exprs = [o.expr for o in outputs]
    lines = [f"x{i} = tl.load(p{i} + {offset(coords, operands[i].strides)}, mask=mask)" for i in used_operands(exprs)]
    for j, o in enumerate(outputs):
        value = store_value(render(o.expr), o.expr, o.type.dtype, shape)
        lines.append(f"tl.store(q{j} + {offset(coords, o.strides)}, {value}, mask=mask)")
    return lines


def pool_context(name: str, group: FusedGroup, device: str) -> dict:
    k: PoolKernel = group.kernel
    s = group.schedule
    n, c, oh, ow = k.out_shape
    h, w = k.input_shape[2], k.input_shape[3]
    # The input's strides over (N, C, H, W): a view's, where the pool reads one (its buffer is the base).
    sn, sc, sh, sw = k.input.strides
    reads, writes = launcher_names(group, len(k.outputs))
    coords = ["c0", "c1", "c2", "c3"]
    tensors = [(sn, sc, sh, sw)] + [op.strides for op in k.operands] + [o.strides for o in k.outputs]
    inputs = [op.strides for op in k.prologue_operands] or tensors[:1]
    return dict(
        name=name, reads=reads, writes=writes, args=reads + writes,
        params=["pin"] + [f"pp{i}" for i in range(len(k.prologue_operands))]
        + [f"p{i}" for i in range(len(k.operands))] + [f"q{j}" for j in range(len(k.outputs))],
        wide=needs_int64(k.out_shape, tensors[1:]) or needs_int64(k.input_shape, inputs),
        prologue=prologue_lines(k, device),
        numel=n * c * oh * ow, N=n, C=c, OH=oh, OW=ow, H=h, W=w, sN=sn, sC=sc, sH=sh, sW=sw,
        KH=k.kernel[0], KW=k.kernel[1], SH=k.stride[0], SW=k.stride[1], PH=k.padding[0], PW=k.padding[1],
        DH=k.dilation[0], DW=k.dilation[1], op=k.op, count_include_pad=k.count_include_pad,
        divisor=k.divisor_override, init='float("-inf")' if k.op == "max" else "0.0",
        epilogue=epilogue_lines(k.outputs, k.operands, coords, "[BLOCK]", device),
        allocs=alloc_lines(k.outputs, device_expr(reads, device)),
        block=s.get("BLOCK", 256), num_warps=s.get("num_warps", 4),
    )


def prologue_lines(k: PoolKernel, device: str) -> list[str]:
    """The window element ``v`` computed from the prologue operands at (c0, c1, ih, iw); the
    padding keeps the pool's identity, not the prologue of a value that is not there."""
    if k.prologue is None:
        return []
    coords = ["c0", "c1", "ih", "iw"]
    render = expr_renderer(device, loads="y{}").render
    lines = [f"y{i} = tl.load(pp{i} + {offset(coords, k.prologue_operands[i].strides)}, mask=valid, other=0)"
             for i in used_operands([k.prologue])]
    init = 'float("-inf")' if k.op == "max" else "0.0"
    return lines + [f"v = tl.where(valid, ({render(k.prologue)}).to(tl.float32), {init})"]


def dot_inputs(k: MatmulKernel, precision: str) -> tuple[str, str]:
    """How tl.dot is called: fp32 problems keep IEEE fp32 unless tf32 was allowed."""
    da, db = k.a.type.dtype, k.b.type.dtype
    cast = "" if da == db else ".to(tl.float32)"
    if "float32" in (da, db) or da != db:
        return cast, f', input_precision="{precision}"'
    return cast, ""


def matmul_context(name: str, group: FusedGroup, device: str) -> dict:
    k: MatmulKernel = group.kernel
    s = group.schedule
    reads, writes = launcher_names(group, len(k.outputs))
    bm, bn, bk = s.get("BM", 64), s.get("BN", 64), s.get("BK", 32)
    cast, precision = dot_inputs(k, s.get("precision", "ieee"))
    tensors = [k.a.strides, k.b.strides] + [op.strides for op in k.operands] + [o.strides for o in k.outputs]
    split = s.get("SPLIT", 1)
    epilogue_params = [f"p{i}" for i in range(len(k.operands))] + [f"q{j}" for j in range(len(k.outputs))]
    return dict(
        name=name, reads=reads, writes=writes, args=reads + writes,
        params=["pa", "pb"] + epilogue_params,
        # split-K: the product kernel writes slices of K to the workspace pw, the epilogue kernel reads them
        split=split, k_slice=math.ceil(math.ceil(k.k / split) / bk) * bk,
        kernel_params=["pa", "pb", "pw"], kernel_args=reads[:2] + ["pw"],
        epilogue_params=["pw"] + epilogue_params, epilogue_args=["pw"] + reads[2:] + writes,
        wide_ws=split * k.batch * k.m * k.n >= 2**31,
        wide=needs_int64((k.batch, max(k.m, k.k), max(k.n, k.k)), tensors),
        M=k.m, N=k.n, K=k.k, batch=k.batch, a_strides=k.a.strides, b_strides=k.b.strides,
        even_k=k.k % bk == 0, cast=cast, precision=precision,
        epilogue=epilogue_lines(k.outputs, k.operands, ["c0", "c1", "c2"], "[BM, BN]", device),
        allocs=alloc_lines(k.outputs, device_expr(reads, device)),
        BM=bm, BN=bn, BK=bk, GROUP_M=s.get("GROUP_M", 8), num_warps=s.get("num_warps", 4),
        num_stages=s.get("num_stages", 3),
    )


# ----------------------------------------------------------------------------------------------
# convolution as an implicit GEMM
# ----------------------------------------------------------------------------------------------

_SPATIAL_NAMES = ("d", "h", "w")


def conv_dot_inputs(k: ConvKernel, precision: str) -> tuple[str, str]:
    """How tl.dot is called: fp32 operands carry the schedule's precision, half types run as they are."""
    if k.input.type.dtype == "float32":
        return "", f', input_precision="{precision}"'
    return "", ""


def conv_rounds_to_tf32(k: ConvKernel, precision: str) -> bool:
    """Whether the kernel convolves TF32-rounded copies of its input and weights (a TF32 dot on
    fp32 operands). The tensor cores truncate fp32 operands to TF32, cuDNN rounds them to nearest:
    truncation doubles the error against a float64 convolution, which is past what a reference
    convolved by cuDNN in TF32 shows."""
    return k.input.type.dtype == "float32" and precision == "tf32"


def conv_row_lines(k: ConvKernel, wide: bool) -> list[str]:
    """Each GEMM row (an output pixel, clamped so its loads stay in bounds) split into the batch
    index ``ob`` and output coordinates ``o_<dim>``; ``i_<dim>`` is where its window starts in
    the input and ``x_row`` that corner's offset (without the channel)."""
    m, _, _ = k.gemm
    names = _SPATIAL_NAMES[-k.spatial:]
    lines = [f"t_m = tl.minimum(rm, {m - 1})" + (".to(tl.int64)" if wide else "")]
    for dim, name in reversed(list(enumerate(names))):
        size = k.out_shape[2 + dim]
        lines.append(f"o_{name} = t_m % {size}")
        lines.append(f"t_m = t_m // {size}")
    lines.append("ob = t_m")
    for dim, name in enumerate(names):
        lines.append(f"i_{name} = o_{name} * {k.stride[dim]} - {k.padding[dim]}")
    sx = k.input.strides
    terms = [f"ob * {sx[0]}"] + [f"i_{name} * {sx[2 + dim]}" for dim, name in enumerate(names)]
    lines.append("x_row = " + " + ".join(terms))
    return lines


def conv_k_lines(k: ConvKernel, wide: bool) -> list[str]:
    """Inside the K loop: ``kk`` (BK reduction indices, channel-major like the weight) split into
    the input channel ``ci`` and kernel taps ``r_<dim>``; the loads of the input tile ``a`` (zero
    outside the input: padding) and the weight tile ``b``."""
    _, _, kdim = k.gemm
    names = _SPATIAL_NAMES[-k.spatial:]
    lines = ["kk = k0 + rk" + (".to(tl.int64)" if wide else ""), f"kin = kk < {kdim}", "t_k = kk"]
    for dim, name in reversed(list(enumerate(names))):
        size = k.weight_shape[2 + dim]
        lines.append(f"r_{name} = t_k % {size}")
        lines.append(f"t_k = t_k // {size}")
    lines.append("ci = t_k")
    valid = ["kin[None, :]"]
    x_terms = [f"ci * {k.input.strides[1]}"]
    for dim, name in enumerate(names):
        lines.append(f"p_{name} = i_{name}[:, None] + (r_{name} * {k.dilation[dim]})[None, :]")
        valid.append(f"(p_{name} >= 0) & (p_{name} < {k.in_shape[2 + dim]})")
        x_terms.append(f"r_{name} * {k.dilation[dim] * k.input.strides[2 + dim]}")
    sw = k.weight.strides
    w_terms = [f"ci * {sw[1]}"] + [f"r_{name} * {sw[2 + dim]}" for dim, name in enumerate(names)]
    lines.append("valid = " + " & ".join(valid))
    lines.append(f"a = tl.load(px + x_row[:, None] + ({' + '.join(x_terms)})[None, :], mask=valid, other=0.0)")
    lines.append(f"b = tl.load(pw + w_col[None, :] + ({' + '.join(w_terms)})[:, None], mask=kin[:, None], other=0.0)")
    return lines


def conv_context(name: str, group: FusedGroup, device: str) -> dict:
    k: ConvKernel = group.kernel
    s = group.schedule
    reads, writes = launcher_names(group, len(k.outputs))
    m, n, kdim = k.gemm
    tensors = [k.input.strides, k.weight.strides] + [op.strides for op in k.operands] + [o.strides for o in k.outputs]
    wide = needs_int64(k.in_shape, [k.input.strides]) or needs_int64(k.out_shape, tensors[2:]) or m * n > 2**31 - 1
    cast, precision = conv_dot_inputs(k, s.get("precision", "ieee"))
    names = _SPATIAL_NAMES[-k.spatial:]
    # Epilogue coordinates over the output's (N, C_out, *spatial) domain, as [BM, BN] blocks.
    coords = ["ob[:, None]", "co_[None, :]"] + [f"o_{name}[:, None]" for name in names]
    round_tf32 = conv_rounds_to_tf32(k, s.get("precision", "ieee"))
    args = reads + writes
    # With TF32 rounding the kernel reads the rounded copies of the input and the weights.
    launch_args = [f"{name}_tf32({a})" for a in args[:2]] + args[2:] if round_tf32 else args
    return dict(
        name=name, reads=reads, writes=writes, args=args, launch_args=launch_args,
        params=["px", "pw"] + [f"p{i}" for i in range(len(k.operands))] + [f"q{j}" for j in range(len(k.outputs))],
        M=m, N=n, K=kdim, w_stride=k.weight.strides[0], wide=wide,
        row_lines=conv_row_lines(k, wide), k_lines=conv_k_lines(k, wide), cast=cast, precision=precision,
        round_tf32=round_tf32,
        epilogue=epilogue_lines(k.outputs, k.operands, coords, "[BM, BN]", device),
        allocs=alloc_lines(k.outputs, device_expr(reads, device)),
        BM=s.get("BM", 64), BN=s.get("BN", 64), BK=s.get("BK", 32), GROUP_M=s.get("GROUP_M", 8),
        num_warps=s.get("num_warps", 4), num_stages=s.get("num_stages", 3),
    )


# Kernels call only these helpers and Triton builtins, never triton.language.standard's @jit
# functions (tl.sum, tl.cumsum, tl.zeros, ...): those are compiled-mode objects when triton was
# imported before TRITON_INTERPRET was set, and would fail inside an interpreted kernel.
REDUCE_HELPERS = '''
@triton.jit
def _akg_add(a, b):
    return a + b


@triton.jit
def _akg_mul(a, b):
    return a * b


@triton.jit
def _akg_max(a, b):
    return tl.maximum(a, b)


@triton.jit
def _akg_min(a, b):
    return tl.minimum(a, b)


@triton.jit
def _akg_argmax_combine(v1, i1, v2, i2):
    # First occurrence of the largest value; NaN counts as largest, as in torch.argmax.
    nan1 = v1 != v1
    nan2 = v2 != v2
    better = (v2 > v1) | ((v2 == v1) & (i2 < i1)) | (nan2 & (~nan1 | (i2 < i1)))
    better = better & ~(nan1 & ~nan2)
    return tl.where(better, v2, v1), tl.where(better, i2, i1)


@triton.jit
def _akg_argmin_combine(v1, i1, v2, i2):
    nan1 = v1 != v1
    nan2 = v2 != v2
    better = (v2 < v1) | ((v2 == v1) & (i2 < i1)) | (nan2 & (~nan1 | (i2 < i1)))
    better = better & ~(nan1 & ~nan2)
    return tl.where(better, v2, v1), tl.where(better, i2, i1)
'''
