"""The analyzer: traces a problem into the typed Graph and estimates its cost.

Tracing uses ``torch.export`` on the CPU with the problem's example inputs. ATen calls become akg
primitives where the compiler understands them (pointwise ops, reductions, scans, views, matmul,
conv, pool); every other call stays a ``library`` node holding its ATen overload and argument
structure, so it can always be executed as a framework call. The decompose pass later rewrites
compound library nodes (softmax, norms, activations, losses) into primitives with the same
translation (``translate_fx``).
"""
from __future__ import annotations

import contextlib
import warnings

import math
import operator
from typing import Any, Iterable

import torch
import torch.fx

from akg import hoist, ir
from akg.problem import Problem, ProblemError
from akg.targets import HardwareSpec


class TraceError(ProblemError):
    """The problem could not be traced into a Graph. One line, names the problem."""


# ----------------------------------------------------------------------------------------------
# ATen -> akg primitive tables (keyed by overload packet name)
# ----------------------------------------------------------------------------------------------

_UNARY = {name: name for name in (
    "neg", "abs", "exp", "exp2", "expm1", "log", "log2", "log1p", "sqrt", "rsqrt", "sin", "cos",
    "tan", "tanh", "sigmoid", "erf", "floor", "ceil", "round", "trunc", "sign", "reciprocal",
    "isnan", "isinf", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh")}
_UNARY.update({"logical_not": "not", "bitwise_not": "not"})
_BINARY = {"mul": "mul", "pow": "pow", "maximum": "max", "minimum": "min", "lt": "lt", "le": "le",
           "gt": "gt", "ge": "ge", "eq": "eq", "ne": "ne", "logical_and": "and", "logical_or": "or",
           "logical_xor": "xor", "bitwise_and": "and", "bitwise_or": "or", "bitwise_xor": "xor",
           "atan2": "atan2"}
_REDUCTIONS = {"sum": "sum", "prod": "prod", "amax": "max", "amin": "min", "argmax": "argmax",
               "argmin": "argmin", "max": "max", "min": "min"}
_SCANS = {"cumsum": "cumsum", "cumprod": "cumprod"}
# cummax/cummin whose indices nobody reads can be max/min scans (the fuser, planeval and the DSLs
# support them). Off for now: the LLM-loop test uses a cummax problem as one akg cannot generate.
_VALUE_SCANS: frozenset[str] = frozenset()
_VIEWS = {"view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "unsqueeze",
          "squeeze", "slice", "select", "alias", "as_strided", "detach", "flatten", "unflatten",
          "numpy_T", "lift_fresh", "broadcast_in_dim", "squeeze_dims", "view_of"}
_MATMULS = {"mm", "bmm", "addmm", "linear", "matmul", "baddbmm"}
_CONVS = {"convolution", "conv1d", "conv2d", "conv3d", "_convolution"}
_POOLS = {"max_pool2d", "avg_pool2d", "max_pool2d_with_indices", "adaptive_avg_pool2d"}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def tensor_type(t: torch.Tensor) -> ir.TensorType:
    return ir.TensorType(tuple(int(s) for s in t.shape), dtype_name(t.dtype), tuple(int(s) for s in t.stride()))


# ----------------------------------------------------------------------------------------------
# FX -> akg nodes
# ----------------------------------------------------------------------------------------------

class _Translator:
    """Turns the call_function nodes of one ATen FX graph into akg Nodes.

    ``names`` maps FX nodes already known (placeholders) to akg value names; new values are named
    ``prefix + fx node name`` so graphs spliced into each other never collide."""

    def __init__(self, names: dict[torch.fx.Node, Any], prefix: str = ""):
        self.names = dict(names)
        self.prefix = prefix
        self.nodes: list[ir.Node] = []
        self.types: dict[str, ir.TensorType] = {}

    # -- values -------------------------------------------------------------------------------
    def arg(self, a: Any) -> Any:
        """An FX argument as IR data: tensors become ValueRefs, 0-d constants their Python value."""
        if isinstance(a, torch.fx.Node):
            v = self.names[a]
            return ir.ValueRef(v) if isinstance(v, str) else v
        if isinstance(a, (list, tuple)):
            return type(a)(self.arg(x) for x in a)
        if isinstance(a, torch.SymInt):
            raise TraceError(f"dynamic shape {a} is not supported; use static sizes")
        return a

    def tensor_arg(self, a: Any) -> ir.ValueRef:
        """A tensor argument that must stay a tensor (a folded scalar becomes a library constant)."""
        v = self.arg(a)
        if isinstance(v, ir.ValueRef):
            return v
        name = f"{self.prefix}const{len(self.nodes)}"
        dtype = torch.float32 if isinstance(v, float) else torch.bool if isinstance(v, bool) else torch.int64
        self.emit(name, "aten.scalar_tensor.default", "library", [], (("args", (v,)), ("kwargs", (("dtype", dtype),))))
        self.types[name] = ir.TensorType((), dtype_name(dtype), ())
        return ir.ValueRef(name)

    def emit(self, out: str | tuple[str, ...], op: str, kind: str, inputs: Iterable[str], attrs=()) -> None:
        outs = (out,) if isinstance(out, str) else tuple(out)
        self.nodes.append(ir.Node(f"n{len(self.nodes)}:{outs[0]}", op, kind, tuple(dict.fromkeys(inputs)), outs, tuple(attrs)))

    def pointwise(self, out: str, op: str, args: tuple, extra: tuple = ()) -> None:
        inputs = [a.name for a in args if isinstance(a, ir.ValueRef)]
        self.emit(out, op, "pointwise", inputs, (("args", tuple(args)),) + extra)

    # -- one FX node --------------------------------------------------------------------------
    def translate(self, node: torch.fx.Node) -> None:
        name = self.prefix + node.name
        val = node.meta.get("val")
        if node.target is operator.getitem:
            src, idx = node.args
            self.names[node] = self.names[src][idx]
            return
        if val is None and getattr(node.target, "__name__", "").startswith("_assert"):
            return   # a metadata check export inserts (x.to(x.device)); it computes nothing
        if isinstance(val, (tuple, list)):
            outs = tuple(f"{name}.{i}" for i in range(len(val)))
            for o, v in zip(outs, val):
                if isinstance(v, torch.Tensor):
                    self.types[o] = tensor_type(v)
            self.names[node] = outs
        elif isinstance(val, torch.Tensor):
            self.types[name] = tensor_type(val)
            self.names[node] = name
        else:
            raise TraceError(f"{node.target} produced {type(val).__name__}, not a tensor")
        packet = getattr(node.target, "__name__", str(node.target)).split(".")[0]
        if not self._primitive(node, packet, name, val):
            self._structured(node, packet, name)

    def _structured(self, node: torch.fx.Node, packet: str, name: Any) -> None:
        """Matmul/conv/pool/view/library: the ATen call as is."""
        kind = ("matmul" if packet in _MATMULS else "conv" if packet in _CONVS else
                "pool" if packet in _POOLS else "view" if packet in _VIEWS else "library")
        args = self.arg(tuple(node.args))
        kwargs = tuple((k, self.arg(v)) for k, v in node.kwargs.items())
        inputs = ir._value_refs(args) + ir._value_refs(tuple(v for _, v in kwargs))
        attrs = [("args", args), ("kwargs", kwargs)]
        if kind == "view":
            attrs.append(("storage_offset", int(node.meta["val"].storage_offset())))
        self.emit(self.names[node], str(node.target), kind, inputs, attrs)

    def _primitive(self, node: torch.fx.Node, packet: str, name: str, val: Any) -> bool:
        """Emit akg primitives for a node the compiler understands; False if it is not one."""
        a, kw = node.args, node.kwargs
        if packet in _UNARY and len(a) == 1 and not kw:
            self.pointwise(name, _UNARY[packet], (self.arg(a[0]),))
        elif packet in _BINARY and len(a) == 2 and not kw:
            self.pointwise(name, _BINARY[packet], (self.arg(a[0]), self.arg(a[1])))
        elif packet in ("add", "sub", "rsub") and len(a) >= 2 and set(kw) <= {"alpha"}:
            self._add_sub(packet, name, a, kw.get("alpha", a[2] if len(a) > 2 else 1))
        elif packet == "div" and kw.get("rounding_mode") in (None, "floor"):
            self.pointwise(name, "div" if kw.get("rounding_mode") is None else "floordiv",
                           (self.arg(a[0]), self.arg(a[1])))
        elif packet == "where" and len(a) == 3:
            self.pointwise(name, "where", tuple(self.arg(x) for x in a))
        elif packet == "relu":
            self.pointwise(name, "max", (self.arg(a[0]), 0))
        elif packet in ("clamp", "clamp_min", "clamp_max") and not kw:
            self._clamp(packet, name, a)
        elif packet in ("_to_copy", "to", "clone", "contiguous", "type_as") and self._is_plain_copy(node):
            self.pointwise(name, "cast", (self.arg(a[0]),), (("dtype", dtype_name(val.dtype)),))
        elif packet in ("max", "min") and len(a) == 2 and isinstance(a[1], torch.fx.Node) and not kw:
            self.pointwise(name, packet, (self.arg(a[0]), self.arg(a[1])))   # max.other: elementwise
        elif packet in _REDUCTIONS:
            # max.dim / min.dim name a (values, indices) pair: self.names holds both names
            return self._reduction(node, packet, self.names[node])
        elif packet in _SCANS and set(kw) <= {"dtype"} and len(a) == 2:
            x = self.arg(a[0])
            self.emit(name, _SCANS[packet], "scan", [x.name], (("dim", a[1] % max(len(val.shape), 1)),))
        elif packet in _VALUE_SCANS and not kw and len(a) == 2 and not _uses_element(node, 1):
            # (values, indices) where only the values are read: a running max/min scan
            x = self.tensor_arg(a[0])
            values = self.names[node][0]
            self.nodes.append(ir.Node(f"n{len(self.nodes)}:{values}", packet, "scan", (x.name,), (values,),
                                      (("dim", a[1] % max(len(val[0].shape), 1)),)))
            self.types = {k: t for k, t in self.types.items() if k != self.names[node][1]}
        else:
            return False
        return True

    def _is_plain_copy(self, node: torch.fx.Node) -> bool:
        src = node.args[0].meta.get("val") if isinstance(node.args[0], torch.fx.Node) else None
        val = node.meta["val"]
        if src is None or src.device != val.device or tuple(src.shape) != tuple(val.shape):
            return False
        return set(node.kwargs) <= {"dtype", "memory_format", "layout", "device", "non_blocking"}

    def _add_sub(self, packet: str, name: str, a: tuple, alpha: Any) -> None:
        x, y = self.arg(a[0]), self.arg(a[1])
        if packet == "rsub":
            x, y = y, x
        if alpha != 1:
            scaled = name + ".alpha"
            self.types[scaled] = self.types[name]
            self.pointwise(scaled, "mul", (y, alpha))
            y = ir.ValueRef(scaled)
        self.pointwise(name, "add" if packet == "add" else "sub", (x, y))

    def _clamp(self, packet: str, name: str, a: tuple) -> None:
        x = self.arg(a[0])
        lo = a[1] if packet in ("clamp", "clamp_min") else None
        hi = a[2] if packet == "clamp" and len(a) > 2 else a[1] if packet == "clamp_max" else None
        if lo is not None and hi is not None:
            self.types[name + ".lo"] = self.types[name]
            self.pointwise(name + ".lo", "max", (x, self.arg(lo)))
            x = ir.ValueRef(name + ".lo")
            self.pointwise(name, "min", (x, self.arg(hi)))
        elif lo is not None:
            self.pointwise(name, "max", (x, self.arg(lo)))
        else:
            self.pointwise(name, "min", (x, self.arg(hi)))

    def _reduction(self, node: torch.fx.Node, packet: str, name: Any) -> bool:
        a, kw = node.args, dict(node.kwargs)
        x = self.tensor_arg(a[0])
        rank = len(a[0].meta["val"].shape)
        dims = a[1] if len(a) > 1 else kw.pop("dim", None)
        keepdim = a[2] if len(a) > 2 else kw.pop("keepdim", False)
        dtype = kw.pop("dtype", None)
        if kw or (dtype is not None and dtype != a[0].meta["val"].dtype):
            return False
        if packet in ("max", "min") and isinstance(name, tuple):   # max.dim: (values, indices)
            d = (dims % rank,)
            attrs = (("dims", d), ("keepdim", bool(keepdim)))
            self.emit(name[0], packet, "reduction", [x.name], attrs)
            self.emit(name[1], "arg" + packet, "reduction", [x.name], attrs)
            return True
        if packet in ("argmax", "argmin") and dims is None:
            return False   # over the flattened tensor: a library call
        if dims is None or dims == [] or dims == ():
            dims = tuple(range(rank))
        dims = tuple(sorted({d % max(rank, 1) for d in (dims if isinstance(dims, (list, tuple)) else (dims,))}))
        if rank == 0:
            return False
        self.emit(name, _REDUCTIONS[packet], "reduction", [x.name], (("dims", dims), ("keepdim", bool(keepdim))))
        return True


_SCALAR_COPIES = {"clone", "alias", "detach", "lift_fresh_copy", "contiguous", "_to_copy"}


def _uses_element(node: torch.fx.Node, index: int) -> bool:
    """Whether anything reads element ``index`` of the tuple ``node`` returns."""
    return any(u.target is not operator.getitem or u.args[1] == index for u in node.users)


def _fold_scalar(node: torch.fx.Node, names: dict | None = None) -> Any:
    """The Python value of a 0-d constant tensor made in the graph (decompositions make these),
    or of a copy of one (export clones a lifted constant before use)."""
    packet = getattr(node.target, "__name__", "").split(".")[0]
    if packet in _SCALAR_COPIES and names and node.args and isinstance(node.args[0], torch.fx.Node):
        value = names.get(node.args[0])
        if isinstance(value, (bool, int, float)):
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor) and val.dim() == 0:
                return bool(value) if val.dtype == torch.bool else float(value) if val.is_floating_point() else int(value)
    if packet == "scalar_tensor" and node.args:
        return node.args[0]
    if packet == "full" and list(node.args[0]) == [] and node.kwargs.get("dtype") in (None, torch.float32, torch.int64, torch.bool):
        return node.args[1]
    return None


def translate_fx(gm: torch.fx.GraphModule, names: dict[torch.fx.Node, Any], prefix: str = "") -> _Translator:
    """Translate every call in ``gm`` (placeholders already named in ``names``)."""
    tr = _Translator(names, prefix)
    for node in gm.graph.nodes:
        if node.op == "call_function":
            folded = _fold_scalar(node, tr.names)
            if folded is not None:
                tr.names[node] = folded
                continue
            tr.translate(node)
        elif node.op == "get_attr":
            const = getattr(gm, node.target)
            if isinstance(const, torch.Tensor) and const.dim() == 0:
                tr.names[node] = const.item()
            else:
                raise TraceError(f"the traced program holds a tensor constant {node.target}; make it a buffer")
    return tr


def fx_outputs(gm: torch.fx.GraphModule) -> list:
    out = next(n for n in gm.graph.nodes if n.op == "output")
    return list(torch.utils._pytree.tree_leaves(out.args[0]))


# ----------------------------------------------------------------------------------------------
# trace
# ----------------------------------------------------------------------------------------------

def trace(problem: Problem, shapes_only: bool = True) -> ir.Graph:
    """The problem's forward as an akg Graph (ATen level: compound ops stay library nodes).

    ``shapes_only``: build the model and its inputs under ``FakeTensorMode`` (shapes, dtypes and
    strides, no storage), so a problem with gigabytes of inputs traces in a second; where that
    cannot work (a forward that reads a tensor's values, a constant made from data) the problem is
    traced again with real tensors."""
    if shapes_only:
        try:
            return trace_once(problem, fake=True)
        except Exception:   # the real route says what is wrong, or succeeds where fake tensors cannot
            pass
    return trace_once(problem, fake=False)


def _built(problem: Problem, fake: bool):
    """(model, inputs) at the problem's declared sizes; under a fake mode when ``fake``."""
    # The model stays in the mode it is built in: the harness runs the reference that way, so a
    # batch norm normalises by the batch's statistics and a dropout drops (as built: training).
    if not fake:
        return problem.build_model(0), problem.example_inputs(0)
    from torch._subclasses.fake_tensor import FakeTensorMode
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    try:
        with mode:
            model = problem.build_model(0)
    except Exception:   # a constructor that reads values (x.item() over a linspace): real parameters
        model = problem.build_model(0)
    with mode:
        inputs = problem.example_inputs(0)
    return model, inputs, mode


def trace_once(problem: Problem, fake: bool) -> ir.Graph:
    built = _built(problem, fake)
    model, inputs = built[0], built[1]
    mode = built[2] if fake else contextlib.nullcontext()
    try:
        with mode, torch.no_grad(), warnings.catch_warnings():
            # torch.export's own deprecation notices say nothing about the user's program.
            warnings.simplefilter("ignore", FutureWarning)
            reference = model(*inputs)
            exported = torch.export.export(model, tuple(inputs)).run_decompositions({})
    except Exception as e:   # export's messages are long; the first line says what failed
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TraceError(f"problem {problem.name}: torch.export failed ({type(e).__name__}: {msg}); simplify forward()") from None
    try:
        return _graph_from_export(exported, inputs, isinstance(reference, (tuple, list)))
    except TraceError as e:
        raise TraceError(f"problem {problem.name}: {e}") from None


def _graph_from_export(exported, inputs: list, returns_tuple: bool) -> ir.Graph:
    gm = exported.graph_module
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    names: dict[torch.fx.Node, Any] = {}
    params, types, user = [], {}, []
    for node, spec in zip(placeholders, exported.graph_signature.input_specs):
        kind = spec.kind.name
        if kind in ("PARAMETER", "BUFFER"):
            name = "p:" + spec.target
            params.append(name)
        elif kind == "USER_INPUT":
            name = node.name
            user.append(node)
        elif kind == "CONSTANT_TENSOR" and _scalar_constant(exported, spec.target) is not None:
            # a 0-d tensor made in forward (torch.tensor(0.5)) is a scalar operand
            names[node] = _scalar_constant(exported, spec.target)
            continue
        else:
            raise TraceError(f"unsupported graph input {spec.target or node.name} ({kind.lower()})")
        names[node] = name
        if isinstance(node.meta.get("val"), torch.Tensor):
            types[name] = tensor_type(node.meta["val"])
    # export drops non-tensor positional arguments (they are specialised); recover them by position.
    graph_inputs, constants = _user_inputs(user, inputs, names)
    tr = translate_fx(gm, names)
    types.update(tr.types)
    outputs = []
    # Only what forward returns: in training mode export also returns the updated buffers (batch
    # norm's running statistics), which no output depends on.
    kinds = [spec.kind.name for spec in exported.graph_signature.output_specs]
    for o, kind in zip(fx_outputs(gm), kinds):
        if kind != "USER_OUTPUT":
            continue
        v = tr.names[o] if isinstance(o, torch.fx.Node) else o
        if not isinstance(v, str):
            raise TraceError("forward returns a constant, not a computed tensor")
        outputs.append(v)
    graph = ir.Graph(tuple(graph_inputs), tuple(params), tuple(tr.nodes), tuple(outputs),
                     tuple(types.items()), tuple(constants), returns_tuple)
    graph.verify()
    return graph


def _scalar_constant(exported, target: str):
    const = exported.constants.get(target)
    if isinstance(const, torch.Tensor) and const.dim() == 0 and not isinstance(const, torch._subclasses.FakeTensor):
        return const.item()
    return None


def _user_inputs(user_nodes: list, inputs: list, names: dict) -> tuple[list[str], list[tuple[str, Any]]]:
    graph_inputs, constants = [], []
    tensors = iter(user_nodes)
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor):
            graph_inputs.append(names[next(tensors)])
        else:
            name = f"arg{i}"
            graph_inputs.append(name)
            constants.append((name, x))
    # int/float placeholders that export kept (specialised) get their example value
    for node in tensors:
        constants.append((names[node], node.meta.get("val")))
    return graph_inputs, constants


# ----------------------------------------------------------------------------------------------
# plans_for: the whole frontend in one call
# ----------------------------------------------------------------------------------------------

def plans_for(problem: Problem, passes: list | None = None, context=None) -> tuple[ir.Graph, list[ir.KernelPlan]]:
    """Trace, run the graph passes, then the plan passes. ``passes`` defaults to every installed
    pass plugin. Returns the decomposed graph and every verified plan (at least one)."""
    from akg import plugins
    from akg.targets import PassContext, run_graph_passes, run_plan_passes
    passes = plugins.passes() if passes is None else passes
    context = context or PassContext()
    graph = run_graph_passes(trace(problem), passes, context)
    return graph, run_plan_passes(graph, passes, context)


# ----------------------------------------------------------------------------------------------
# analyze
# ----------------------------------------------------------------------------------------------

# FLOPs per output element of a pointwise primitive. Counting happens on the decomposed graph, so a
# softmax or a norm is counted op by op. A transcendental counts as several flops (range reduction
# plus a polynomial, as math libraries and special-function units do it); a cast or a select moves
# data and computes nothing.
_TRANSCENDENTAL_FLOPS = 4.0
_TRANSCENDENTAL = {"exp", "exp2", "expm1", "log", "log2", "log1p", "sin", "cos", "tan", "tanh",
                   "sigmoid", "erf", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh",
                   "atan2", "pow"}
_FREE = {"cast", "where"}


def _pointwise_flops(op: str) -> float:
    if op in _FREE:
        return 0.0
    return _TRANSCENDENTAL_FLOPS if op in _TRANSCENDENTAL else 1.0


def _node_flops(node: ir.Node, types: dict[str, ir.TensorType]) -> float:
    out = types.get(node.outputs[0])
    if out is None:
        return 0.0
    refs = ir._value_refs(node.attr("args", ()))
    if node.kind == "matmul":
        lhs = types[refs[1] if node.op.split(".")[1] in ("addmm", "baddbmm") else refs[0]]
        return 2.0 * out.numel * lhs.shape[-1]
    if node.kind == "conv":
        weight = types[refs[1]]   # (Cout, Cin / groups, *kernel)
        return 2.0 * out.numel * math.prod(weight.shape[1:])
    if node.kind == "reduction":
        return float(types[node.inputs[0]].numel)
    if node.kind == "pool":
        window = node.attr("args", ())[1] if len(node.attr("args", ())) > 1 else (1, 1)
        return float(out.numel * math.prod(window if isinstance(window, (list, tuple)) else (window, window)))
    if node.kind == "pointwise":
        return out.numel * _pointwise_flops(node.op)
    if node.kind in ("scan", "library", "gather"):
        return float(out.numel)
    return 0.0


def decomposed(graph: ir.Graph) -> ir.Graph:
    """The graph after the installed graph passes (compound ops opened into primitives)."""
    from akg import plugins
    from akg.targets import PassContext, run_graph_passes
    return run_graph_passes(graph, plugins.passes(), PassContext())


def precision_mode(graph: ir.Graph) -> str:
    dtypes = {t.dtype for _, t in graph.types}
    for dtype, mode in (("float64", "fp64"), ("float32", "fp32"), ("bfloat16", "bf16"), ("float16", "fp16")):
        if dtype in dtypes:
            return mode
    return "fp32"


def tf32_kinds(mode: str) -> set[str]:
    """Node kinds whose fp32 FLOPs torch runs on TF32 units with its current settings, as the
    backends report them. Their floor uses the TF32 peak; a floor at the fp32 SIMT peak would be
    one no library call meets. Hardware without a TF32 peak runs them at the fp32 peak anyway."""
    if mode != "fp32":
        return set()
    from akg import plugins
    return set().union(*(b.tf32_kinds() for b in plugins.backends().values()))


# fp32 matmul FLOPs that torch keeps in IEEE fp32 can still run at fp32 accuracy on TF32 units, as
# three TF32 products of the operands' high and low halves (the dropped low x low term is ~2^-22
# relative): their floor is the faster of that and the fp32 peak, so a kernel doing it is not
# judged faster than the hardware allows.
SPLIT_TF32 = "tf32x3"


def mode_peak(hw: HardwareSpec, mode: str, base_mode: str) -> float:
    if mode == SPLIT_TF32:
        return max(hw.peak(base_mode), hw.peak("tf32") / 3)
    return hw.peak(mode) or hw.peak(base_mode)


def compute_ms(hw: HardwareSpec, flops_by_mode: dict[str, float], base_mode: str) -> float:
    """Time at peak for FLOPs split by precision mode. Hardware without a TF32 peak (CPUs) runs
    those FLOPs at the base mode's peak; 0 where no peak is known."""
    total = 0.0
    for m, f in flops_by_mode.items():
        peak = mode_peak(hw, m, base_mode)
        total += f / (peak * 1e12) * 1e3 if f and peak else 0.0
    return total


def floor_ms(hw: HardwareSpec, flops_by_mode: dict[str, float], bytes_moved: float, base_mode: str) -> float:
    memory = bytes_moved / (hw.memory_bandwidth_gbs * 1e9) * 1e3 if hw.memory_bandwidth_gbs else 0.0
    return max(memory, compute_ms(hw, flops_by_mode, base_mode))


def analyze(problem: Problem, hardware: list[HardwareSpec], graph: ir.Graph | None = None) -> ir.Analysis:
    """FLOPs (counted on the decomposed graph), fewest bytes, and the roofline floor on each
    hardware. ``graph`` defaults to the problem's decomposed trace."""
    graph = graph or decomposed(trace(problem))
    types = graph.type_map()
    mode = precision_mode(graph)
    on_tf32 = tf32_kinds(mode)
    flops_by_mode = {mode: 0.0, "tf32": 0.0, SPLIT_TF32: 0.0}
    # Folded weights (akg.hoist) are computed once, not per call: the floor counts what each call
    # runs and reads, so after a rewrite it is the rewritten program's floor.
    nodes, stored = hoist.per_call(graph)
    for n in nodes:
        split = mode == "fp32" and n.kind == "matmul"
        flops_by_mode["tf32" if n.kind in on_tf32 else SPLIT_TF32 if split else mode] += _node_flops(n, types)
    flops = sum(flops_by_mode.values())
    touched = [v for v in graph.inputs + stored if v in types] + list(dict.fromkeys(graph.outputs))
    bytes_moved = float(sum(types[v].nbytes for v in touched))
    roofline = tuple((h.name, floor_ms(h, flops_by_mode, bytes_moved, mode)) for h in hardware)
    intensity = flops / bytes_moved if bytes_moved else math.inf
    ridge = [h.peak(mode) * 1e12 / (h.memory_bandwidth_gbs * 1e9) for h in hardware if h.memory_bandwidth_gbs and h.peak(mode)]
    bound = "compute" if ridge and intensity >= min(ridge) else "memory"
    kinds = sorted({n.kind for n in graph.nodes})
    notes = [f"node kinds: {', '.join(kinds)}", f"precision mode {mode}"]
    if flops_by_mode["tf32"]:
        notes.append(f"{', '.join(sorted(on_tf32))} FLOPs at the TF32 peak (torch allows TF32 for them)")
    if flops_by_mode[SPLIT_TF32]:
        notes.append("fp32 matmul FLOPs at the faster of the fp32 peak and a third of the TF32 peak "
                     "(three TF32 products keep fp32 accuracy)")
    library = sorted({n.op for n in graph.nodes if n.kind == "library"})
    if library:
        notes.append(f"library ops (one flop per output element): {', '.join(library)}")
    analysis = ir.Analysis(graph, float(flops), bytes_moved, roofline, bound, tuple(notes))
    analysis.verify()
    return analysis


def format_analysis(analysis: ir.Analysis) -> str:
    g = analysis.graph
    intensity = analysis.flops / analysis.bytes_moved if analysis.bytes_moved else float("inf")
    ops = ", ".join(dict.fromkeys(n.op for n in g.nodes))
    lines = [
        f"ops        {ops}",
        f"flops      {analysis.flops:.3e}",
        f"bytes      {analysis.bytes_moved:.3e} (inputs and parameters read once, outputs written once)",
        f"intensity  {intensity:.2f} flop/byte",
        f"bound      {analysis.bound}",
    ]
    for hw, ms in analysis.roofline_ms:
        lines.append(f"roofline   {hw}: {ms * 1e3:.1f} us")
    lines += [f"note       {n}" for n in analysis.notes]
    return "\n".join(lines)


def hardware_brief(analysis: ir.Analysis | None, hardware: HardwareSpec, floor: float | None) -> str:
    """The analysis and the hardware facts an LLM needs to plan kernels (prompts/analyzer.j2)."""
    from akg.agents import prompts
    flops = analysis.flops if analysis is not None else 0.0
    moved = analysis.bytes_moved if analysis is not None else 0.0
    return prompts.render(
        "analyzer", flops=flops, bytes=moved, intensity=flops / moved if moved else 0.0,
        bound=analysis.bound if analysis is not None else "unknown", floor_ms=floor,
        notes=list(analysis.notes) if analysis is not None else ["the program could not be traced; no analysis"],
        hw=hardware, peaks=[(m, t) for m, t in hardware.peak_tflops if t]).strip()
