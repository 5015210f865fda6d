"""The peer implementations `bench/peers.py` times beside FusedNorm, one call per operation and shape.

Each peer is optional: `load_peers()` returns those that import, and the reason for each that does not. A peer
gives, for an operation it implements, a builder: `builder(case)` returns `call(i)` (one call on buffer set i)
or raises `Unsupported` with the reason (a shape or dtype the peer refuses or would silently hand to another
implementation). The operations and their bytes are those of `fusednorm bench` (see `op_bytes`).

Peers:
- torch_eager: `F.rms_norm`, `x + r` then `F.rms_norm`, `F.layer_norm`; backward through autograd.
- torch_compile: `torch.compile` of the Hugging Face LlamaRMSNorm formula (and of `x + r` before it), and of
  `F.layer_norm`; backward through autograd.
- liger: Liger-Kernel's Triton kernels (`LigerRMSNormFunction`, `LigerFusedAddRMSNormFunction`,
  `LigerLayerNormFunction`); backward through autograd.
- liger_cutedsl: Liger-Kernel 0.8.5's CuTe DSL RMSNorm (`rms_norm_cutedsl`), forward and backward (autograd),
  for N <= 65536 with N a multiple of 16 bytes' worth of elements (elsewhere it hands the call to its Triton kernel,
  which would be timed under the wrong name).
- quack: Dao-AILab's Quack (`quack.rmsnorm`: `rmsnorm_fwd` with and without residual, `rmsnorm_bwd`,
  `layernorm_fwd`, `layernorm_bwd`), called directly; the backward's inputs (rstd, mean) come from Quack's own
  forward, untimed. Quack's LayerNorm takes fp32 weight and bias.

Every builder needs PyTorch and CUDA; nothing here runs at import time.
"""
import importlib
import inspect
import math
import warnings

EPS = 1e-6
OPS = ["rmsnorm", "rmsnorm-residual", "rmsnorm-backward", "layernorm", "layernorm-backward"]
BACKWARD = {"rmsnorm-backward", "layernorm-backward"}


class Unsupported(Exception):
    """A peer that does not run an operation at a shape (the message says why)."""


def op_bytes(op, rows, cols, size):
    """Bytes an operation must move, as `fusednorm bench` counts them: each input read once, each output written once
    (T: one rows x cols tensor, P: one row of parameters, 4 bytes per row for each fp32 statistic)."""
    t, p = rows * cols * size, cols * size
    return {"rmsnorm": 2 * t + p, "rmsnorm-residual": 4 * t + p, "rmsnorm-backward": 3 * t + 2 * p + 4 * rows,
            "layernorm": 2 * t + 2 * p, "layernorm-backward": 3 * t + 4 * p + 8 * rows}[op]


class Case:
    """The inputs of one operation and shape: `sets` buffer sets of x (and of the residual), one weight, bias and dy,
    random (never zeros), made when first asked for."""

    def __init__(self, torch, op, rows, cols, dtype, sets):
        self.torch, self.op, self.rows, self.cols, self.dtype, self.sets = torch, op, rows, cols, dtype, sets
        self._made = {}

    def _random(self, shape, dtype=None):
        t = self.torch
        return (t.randn(shape, device="cuda", dtype=t.float32) * 0.5 + 0.25).to(dtype or self.dtype)

    def _get(self, name, make):
        if name not in self._made:
            self._made[name] = make()
        return self._made[name]

    @property
    def x(self):
        return self._get("x", lambda: self._random((self.sets, self.rows, self.cols)))

    @property
    def residual(self):
        return self._get("residual", lambda: self._random((self.sets, self.rows, self.cols)))

    @property
    def weight(self):
        return self._get("weight", lambda: self._random((self.cols,)))

    @property
    def bias(self):
        return self._get("bias", lambda: self._random((self.cols,)))

    @property
    def dy(self):
        return self._get("dy", lambda: self._random((self.rows, self.cols)))


# ---------------------------------------------------------------- generic builders
def forward_builder(fn, parameters=("weight",), residual=False):
    """`fn(x, [residual,] *parameters)` on buffer set i."""
    def build(case):
        x, r = case.x, case.residual if residual else None
        params = [getattr(case, p) for p in parameters]
        if residual:
            return lambda i: fn(x[i], r[i], *params)
        return lambda i: fn(x[i], *params)
    return build


def autograd_builder(fn, parameters=("weight",)):
    """The backward of `fn(x, *parameters)` through autograd: gradients of x and every parameter, the graph of
    each buffer set built once (untimed) and kept."""
    def build(case):
        torch = case.torch
        xs = [case.x[i].detach().clone().requires_grad_(True) for i in range(case.sets)]
        params = [getattr(case, p).detach().clone().requires_grad_(True) for p in parameters]
        ys = [fn(xi, *params) for xi in xs]
        dy = case.dy
        return lambda i: torch.autograd.grad(ys[i], [xs[i], *params], dy, retain_graph=True)
    return build


def call_by_names(fn, values, flags=None):
    """Calls `fn` with each of its parameters taken from `values` under any of the names given for it (Quack's
    argument names differ between versions: `dout` or `grad_out`); `flags` are passed when `fn` has them."""
    aliases = {"x": ("x", "input"), "weight": ("weight", "w"), "dout": ("dout", "grad_out", "dy"),
               "mean": ("mean",), "rstd": ("rstd",), "bias": ("bias", "b")}
    signature = inspect.signature(fn)
    arguments = {}
    for key, value in values.items():
        name = next((n for n in aliases.get(key, (key,)) if n in signature.parameters), None)
        if name is None:
            raise Unsupported(f"{fn.__name__}{signature} has no parameter for {key}")
        arguments[name] = value
    for key, value in (flags or {}).items():
        if key in signature.parameters:
            arguments[key] = value
    return fn(**arguments)


# ---------------------------------------------------------------- the peers
def torch_peers(torch, F):
    def llama_rmsnorm(x, w, eps: float = EPS):
        """The Hugging Face LlamaRMSNorm forward, as written there."""
        input_dtype = x.dtype
        h = x.to(torch.float32)
        variance = h.pow(2).mean(-1, keepdim=True)
        h = h * torch.rsqrt(variance + eps)
        return w * h.to(input_dtype)

    def residual_rmsnorm(x, r, w):
        s = x + r
        return F.rms_norm(s, (s.shape[-1],), w, EPS), s

    def compiled_residual(x, r, w):
        s = x + r
        return llama_rmsnorm(s, w), s

    def layer_norm(x, w, b):
        return F.layer_norm(x, (x.shape[-1],), w, b, EPS)

    def rms_norm(x, w):
        return F.rms_norm(x, (x.shape[-1],), w, EPS)

    compiled_rms, compiled_layer = torch.compile(llama_rmsnorm), torch.compile(layer_norm)
    return {
        "torch_eager": {
            "rmsnorm": forward_builder(rms_norm), "rmsnorm-residual": forward_builder(residual_rmsnorm, residual=True),
            "rmsnorm-backward": autograd_builder(rms_norm), "layernorm": forward_builder(layer_norm, ("weight", "bias")),
            "layernorm-backward": autograd_builder(layer_norm, ("weight", "bias")),
        },
        "torch_compile": {
            "rmsnorm": forward_builder(compiled_rms),
            "rmsnorm-residual": forward_builder(torch.compile(compiled_residual), residual=True),
            "rmsnorm-backward": autograd_builder(compiled_rms), "layernorm": forward_builder(compiled_layer, ("weight", "bias")),
            "layernorm-backward": autograd_builder(compiled_layer, ("weight", "bias")),
        },
    }


def liger_peer():
    from liger_kernel.ops.rms_norm import LigerRMSNormFunction

    def rms(x, w):
        return LigerRMSNormFunction.apply(x, w, EPS, 0.0, "llama", False)

    peer = {"rmsnorm": forward_builder(rms), "rmsnorm-backward": autograd_builder(rms)}
    try:
        from liger_kernel.ops.fused_add_rms_norm import LigerFusedAddRMSNormFunction

        peer["rmsnorm-residual"] = forward_builder(
            lambda x, r, w: LigerFusedAddRMSNormFunction.apply(x, r, w, EPS, 0.0, "llama", False), residual=True)
    except ImportError:
        pass
    try:
        from liger_kernel.ops.layer_norm import LigerLayerNormFunction

        def layer(x, w, b):
            return LigerLayerNormFunction.apply(x, w, b, EPS)

        peer["layernorm"] = forward_builder(layer, ("weight", "bias"))
        peer["layernorm-backward"] = autograd_builder(layer, ("weight", "bias"))
    except ImportError:
        pass
    return peer


def liger_cutedsl_peer():
    module = importlib.import_module("liger_kernel.ops.backends._cutedsl.rms_norm")
    rms_norm_cutedsl = module.rms_norm_cutedsl

    def rms(x, w):
        return rms_norm_cutedsl(x, w, EPS, 0.0, "llama", False)

    def guarded(builder):
        def build(case):
            width = 16 // case.torch.empty((), dtype=case.dtype).element_size()
            if case.cols > 65536 or case.cols % width:
                raise Unsupported(f"N = {case.cols}: the CuTe DSL kernel takes N <= 65536, a multiple of {width}")
            with warnings.catch_warnings(record=True) as caught:  # a fallback to Triton warns
                warnings.simplefilter("always")
                call = builder(case)
                call(0)
            if any("fall" in str(w.message).lower() for w in caught):
                raise Unsupported(f"N = {case.cols}: handed to another backend ({caught[0].message})")
            return call
        return build

    return {"rmsnorm": guarded(forward_builder(rms)), "rmsnorm-backward": guarded(autograd_builder(rms))}


def quack_peer():
    # `import quack.rmsnorm` gives the function `rmsnorm` (the package re-exports it): import the module by name.
    module = importlib.import_module("quack.rmsnorm")
    try:
        layer_module = importlib.import_module("quack.layernorm")
    except ImportError:
        layer_module = None

    def find(name):
        for m in (module, layer_module):
            if m is not None and hasattr(m, name):
                return getattr(m, name)
        return None

    rmsnorm_fwd, rmsnorm_bwd = module.rmsnorm_fwd, module.rmsnorm_bwd
    layernorm_fwd, layernorm_bwd = find("layernorm_fwd"), find("layernorm_bwd")

    def rms_backward(case):
        x, w, dy = case.x, case.weight, case.dy
        rstds = [rmsnorm_fwd(x[i], w, eps=EPS, store_rstd=True)[2] for i in range(case.sets)]
        return lambda i: rmsnorm_bwd(x[i], w, dy, rstds[i])

    def fp32_parameters(case):
        torch = case.torch
        return case.weight.to(torch.float32), case.bias.to(torch.float32)

    def layer_forward(case):
        x = case.x
        w, b = fp32_parameters(case)
        return lambda i: layernorm_fwd(x[i], w, b, eps=EPS)

    def layer_backward(case):
        x, dy = case.x, case.dy
        w, b = fp32_parameters(case)
        saved = [layernorm_fwd(x[i], w, b, eps=EPS, return_rstd=True, return_mean=True) for i in range(case.sets)]
        return lambda i: call_by_names(
            layernorm_bwd, {"x": x[i], "weight": w, "dout": dy, "mean": saved[i][2], "rstd": saved[i][1]},
            flags={"has_bias": True})

    peer = {
        "rmsnorm": forward_builder(lambda x, w: rmsnorm_fwd(x, w, eps=EPS)),
        "rmsnorm-residual": forward_builder(lambda x, r, w: rmsnorm_fwd(x, w, residual=r, eps=EPS), residual=True),
        "rmsnorm-backward": rms_backward,
    }
    if layernorm_fwd is not None:
        peer["layernorm"] = layer_forward
        if layernorm_bwd is not None:
            peer["layernorm-backward"] = layer_backward
    return peer


def load_peers(torch, F, wanted=None):
    """The peers that import, as {name: {op: builder}}, and {name: reason} for those that do not."""
    # Timing a backward pass repeatedly needs retain_graph=True, which compiled graphs with donated buffers refuse.
    import torch._functorch.config as functorch_config

    functorch_config.donated_buffer = False
    peers, skipped = dict(torch_peers(torch, F)), {}
    for name, load in (("liger", liger_peer), ("liger_cutedsl", liger_cutedsl_peer), ("quack", quack_peer)):
        try:
            peers[name] = load()
        except Exception as error:  # noqa: BLE001 -- any import failure makes the peer optional
            skipped[name] = f"{type(error).__name__}: {str(error)[:300]}"
    if wanted:
        peers = {k: v for k, v in peers.items() if k in wanted}
    return peers, skipped


def buffer_sets(bytes_per_set, l2_bytes, cap=4096):
    """Buffer sets to rotate over so that they exceed three times the L2 cache."""
    return max(1, min(cap, math.ceil(3 * l2_bytes / max(bytes_per_set, 1))))
