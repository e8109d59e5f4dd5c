"""Optimizers that update parameter dicts in place from gradient dicts with the same keys.

Every optimizer's whole state is `state_dict()`: arrays plus a step counter, so a
checkpoint can restore it exactly. Updates are written with `out=` into buffers made
once, so a step allocates nothing of the parameters' size.
"""
from __future__ import annotations

import numpy as np


def global_norm(grads: dict) -> float:
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


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


class Optimizer:
    name = ""
    slots: tuple = ()

    def __init__(self, params: dict, lr: float):
        self.lr = lr
        self.t = 0
        self.state = {slot: {k: np.zeros_like(v) for k, v in params.items()} for slot in self.slots}
        self._tmp = {k: np.empty_like(v) for k, v in params.items()}

    def step(self, params: dict, grads: dict) -> None:
        self.t += 1
        for k, p in params.items():
            self._update(k, p, grads[k], self._tmp[k])

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

    def __init__(self, params, lr=2e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        super().__init__(params, lr)
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def _update(self, k, p, g, tmp):
        b1, b2 = self.beta1, self.beta2
        m, v = self.state["m"][k], self.state["v"][k]
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


OPTIMIZERS = {cls.name: cls for cls in (Adam, Adagrad)}


def make(name: str, params: dict, lr: float) -> Optimizer:
    return OPTIMIZERS[name](params, lr=lr)
