"""Optimizers, gradient clipping and learning-rate schedules.

Optimizers update parameter dicts in place from gradient dicts with the same keys.
Every optimizer's whole state is `state_dict()`: arrays plus a step counter, so a
checkpoint can restore it exactly. Updates are written with `out=` into buffers made
once, so a step allocates nothing of the parameters' size.

Weight decay is decoupled (Loshchilov & Hutter's AdamW form, the same for every
optimizer): before the update, each weight matrix is shrunk, p -= lr * weight_decay * p;
biases (1-d parameters) are not decayed.
"""
from __future__ import annotations

import math

import numpy as np


def global_norm(grads: dict) -> float:
    norm = float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))
    if math.isinf(norm) and all(np.all(np.isfinite(g)) for g in grads.values()):
        # Finite gradients whose squares overflow float32 (a norm past 1.8e19: exploding
        # gradients) still have a norm, and clipping can still scale them down.
        norm = float(np.sqrt(sum(float(np.vdot(g.astype(np.float64), g.astype(np.float64))) for g in grads.values())))
    return norm


def clip_by_global_norm(grads: dict, max_norm: float) -> tuple[float, bool]:
    """Scale all gradients down together when their joint norm passes max_norm.

    Returns (norm before clipping, whether it clipped). max_norm 0 turns clipping off.
    """
    norm = global_norm(grads)
    if max_norm and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= scale
        return norm, True
    return norm, False


def clip_by_value(grads: dict, limit: float) -> tuple[float, bool]:
    """Clip every gradient element to [-limit, limit]. Returns (global norm before, whether any was clipped)."""
    norm = global_norm(grads)
    if not limit:
        return norm, False
    clipped = any(float(np.abs(g).max(initial=0)) > limit for g in grads.values())
    if clipped:
        for g in grads.values():
            np.clip(g, -limit, limit, out=g)
    return norm, clipped


def clip(grads: dict, limit: float, mode: str = "norm") -> tuple[float, bool]:
    return clip_by_value(grads, limit) if mode == "value" else clip_by_global_norm(grads, limit)


def lr_at(config, step: int, progress: float) -> float:
    """The learning rate for update `step` (1-based), `progress` in [0, 1] of the whole run.

    Warmup: lr * step / warmup_steps for the first warmup_steps updates. Then
      constant: lr;  step: lr * lr_decay ** (step // lr_decay_every);
      cosine: lr_min + (lr - lr_min) (1 + cos(pi q)) / 2, q the progress after warmup,
    where progress is the larger of step / max_steps and elapsed / max_time, so a run
    bounded by time ends its cosine when its time runs out.
    """
    lr = config.lr
    if config.warmup_steps and step <= config.warmup_steps:
        return lr * step / config.warmup_steps
    if config.lr_schedule == "step":
        return lr * config.lr_decay ** (step // config.lr_decay_every)
    if config.lr_schedule == "cosine":
        q = min(1.0, max(0.0, progress))
        return config.lr_min + (lr - config.lr_min) * 0.5 * (1 + math.cos(math.pi * q))
    return lr


class Optimizer:
    name = ""
    slots: tuple = ()
    kernels = None  # charrnn.kernels after use_kernels("numba"), else None: numpy's passes

    def __init__(self, params: dict, lr: float, weight_decay: float = 0.0):
        self.lr = lr
        self.weight_decay = weight_decay
        self.t = 0
        self.state = {slot: {k: np.zeros_like(v) for k, v in params.items()} for slot in self.slots}
        self._tmp = {k: np.empty_like(v) for k, v in params.items()}

    def step(self, params: dict, grads: dict) -> None:
        self.t += 1
        shrink = 1.0 - self.lr * self.weight_decay
        for k, p in params.items():
            if self.weight_decay and p.ndim > 1:
                p *= shrink
            self._update(k, p, grads[k], self._tmp[k])

    def use_kernels(self, kernels: str) -> None:
        """Step with numba's compiled loop where one exists (Adam) for "numba" (the model's
        `kernels`), numpy's passes for "numpy". The same numbers either way (tests/test_kernels.py)."""
        if kernels == "numba":
            from . import fused

            self.kernels = fused.load()
        else:
            self.kernels = None

    def state_dict(self) -> dict:
        """{'t': int, 'slot/name': array, ...}"""
        out = {"t": self.t}
        for slot, arrays in self.state.items():
            for k, v in arrays.items():
                out[f"{slot}/{k}"] = v
        return out

    def load_state_dict(self, data: dict) -> None:
        self.t = int(data["t"])
        for slot, arrays in self.state.items():
            for k, v in arrays.items():
                src = data[f"{slot}/{k}"]
                if src.shape != v.shape:
                    raise ValueError(f"optimizer state {slot}/{k} has shape {src.shape}, expected {v.shape}")
                v[...] = src


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), in PyTorch's form so the two can be compared step for step."""

    name = "adam"
    slots = ("m", "v")

    def __init__(self, params, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, k, p, g, tmp):
        b1, b2 = self.beta1, self.beta2
        m, v = self.state["m"][k], self.state["v"][k]
        if self.kernels is not None and p.flags.c_contiguous and g.flags.c_contiguous:
            c = p.dtype.type  # the constants as numpy's passes use them: in p's dtype
            self.kernels.adam(p.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1), c(b1), c(1 - b1), c(b2),
                              c(1 - b2), np.float64(1.0 / np.sqrt(1 - b2**self.t)), c(self.eps), c(self.lr / (1 - b1**self.t)))
            return
        m *= b1
        np.multiply(g, 1 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        # p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
        np.sqrt(v, out=tmp)
        tmp *= 1.0 / np.sqrt(1 - b2**self.t)
        tmp += self.eps
        np.divide(m, tmp, out=tmp)
        tmp *= self.lr / (1 - b1**self.t)
        p -= tmp


class Adagrad(Optimizer):
    """Adagrad as in min-char-rnn: mem += g^2; p -= lr g / sqrt(mem + 1e-8)."""

    name = "adagrad"
    slots = ("mem",)

    def _update(self, k, p, g, tmp):
        mem = self.state["mem"][k]
        np.multiply(g, g, out=tmp)
        mem += tmp
        np.add(mem, 1e-8, out=tmp)
        np.sqrt(tmp, out=tmp)
        np.divide(g, tmp, out=tmp)
        tmp *= self.lr
        p -= tmp


class RMSprop(Optimizer):
    """RMSprop (Tieleman & Hinton, 2012), PyTorch's form: v = a v + (1 - a) g^2; p -= lr g / (sqrt(v) + eps)."""

    name = "rmsprop"
    slots = ("v",)

    def __init__(self, params, lr=1e-3, alpha=0.99, eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.alpha, self.eps = alpha, eps

    def _update(self, k, p, g, tmp):
        v = self.state["v"][k]
        v *= self.alpha
        np.multiply(g, g, out=tmp)
        tmp *= 1 - self.alpha
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self.eps
        np.divide(g, tmp, out=tmp)
        tmp *= self.lr
        p -= tmp


class SGD(Optimizer):
    """SGD with momentum, PyTorch's form: m = mu m + g; p -= lr m (mu = 0 is plain SGD)."""

    name = "sgd"
    slots = ("m",)

    def __init__(self, params, lr=0.1, momentum=0.9, weight_decay=0.0):
        super().__init__(params, lr, weight_decay)
        self.momentum = momentum

    def _update(self, k, p, g, tmp):
        m = self.state["m"][k]
        m *= self.momentum
        m += g
        np.multiply(m, self.lr, out=tmp)
        p -= tmp


OPTIMIZERS = {cls.name: cls for cls in (Adam, Adagrad, RMSprop, SGD)}


def make(name: str, params: dict, lr: float, weight_decay: float = 0.0, momentum: float = 0.9) -> Optimizer:
    extra = {"momentum": momentum} if name == "sgd" else {}
    return OPTIMIZERS[name](params, lr=lr, weight_decay=weight_decay, **extra)


def from_config(config, params: dict) -> Optimizer:
    return make(config.optimizer, params, config.lr, config.weight_decay, config.momentum)
