"""Recurrent layers, each a forward/backward pair over a whole (T, B) chunk.

Dimensions: T time steps, B streams, H hidden units, V vocabulary, D input width.
A layer keeps the activations of its last forward pass for its backward pass, in
buffers that are allocated once per (T, B) shape and reused every update.

Elman layer (Elman, 1990), row vectors:
    h_t = act(x_t W_xh + h_{t-1} W_hh + b_h)
The first layer's input is a one-hot row, so `x_t W_xh` is the row gather `W_xh[id_t]`.
"""
from __future__ import annotations

import numpy as np


def activate(name: str, a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = act(a), in place when out is a."""
    if name == "tanh":
        return np.tanh(a, out=out)
    if name == "relu":
        return np.maximum(a, 0, out=out)
    # sigmoid(a) = (1 + tanh(a/2)) / 2: the same function without exp() overflow warnings.
    np.multiply(a, 0.5, out=out)
    np.tanh(out, out=out)
    out += 1
    out *= 0.5
    return out


def activation_grad(name: str, h: np.ndarray, out: np.ndarray) -> np.ndarray:
    """d act / d a, written from the output h = act(a) (all three allow it)."""
    if name == "tanh":  # 1 - h^2
        np.multiply(h, h, out=out)
        np.subtract(1, out, out=out)
    elif name == "relu":  # 1 where h > 0
        np.greater(h, 0, out=out)
    else:  # sigmoid: h (1 - h)
        np.subtract(1, h, out=out)
        out *= h
    return out


def scatter_add_rows(target: np.ndarray, ids: np.ndarray, rows: np.ndarray, scratch: dict | None = None) -> None:
    """target[ids[i]] += rows[i] for every i, summing repeats: the transpose of a row gather.

    Written as one_hot(ids).T @ rows, one BLAS product of V x N x D, which is many times
    faster than np.add.at, or than sorting and np.add.reduceat, for a character vocabulary.
    `scratch` (a dict) keeps the (V, N) one-hot and the (V, D) product between calls.
    """
    V, N = target.shape[0], len(ids)
    scratch = {} if scratch is None else scratch
    onehot_t = scratch.get("onehot")
    if onehot_t is None or onehot_t.shape != (V, N) or onehot_t.dtype != rows.dtype:
        onehot_t = scratch["onehot"] = np.zeros((V, N), dtype=rows.dtype)
        scratch["product"] = np.empty((V, rows.shape[1]), dtype=rows.dtype)
        scratch["columns"] = np.arange(N)
    columns = scratch["columns"]
    onehot_t[ids, columns] = 1
    product = scratch["product"]
    np.matmul(onehot_t, rows, out=product)
    onehot_t[ids, columns] = 0  # leave it all zeros for the next call
    target += product


class Elman:
    """One Elman layer. `embed=True` takes ids and gathers rows of W_xh (the one-hot product)."""

    param_names = ("W_xh", "W_hh", "b_h")

    def __init__(self, n_in: int, hidden: int, activation: str = "tanh", embed: bool = False, suffix: str = ""):
        self.n_in, self.H, self.activation, self.embed = n_in, hidden, activation, embed
        self.keys = {name: name + suffix for name in self.param_names}
        self._buffers: dict = {}

    def shapes(self) -> dict:
        k, H = self.keys, self.H
        return {k["W_xh"]: (self.n_in, H), k["W_hh"]: (H, H), k["b_h"]: (H,)}

    def init(self, rng: np.random.Generator, dtype) -> dict:
        # U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's nn.RNN: W_hh's spectral radius is about
        # 1/sqrt(3), so the state neither explodes (N(0,1) gives about sqrt(H)) nor, with
        # tanh, saturates at the start; biases start at zero.
        bound = 1.0 / np.sqrt(self.H)
        k = self.keys
        return {
            k["W_xh"]: rng.uniform(-bound, bound, (self.n_in, self.H)).astype(dtype),
            k["W_hh"]: rng.uniform(-bound, bound, (self.H, self.H)).astype(dtype),
            k["b_h"]: np.zeros(self.H, dtype=dtype),
        }

    def _buf(self, T: int, B: int, dtype, backward: bool = False) -> dict:
        key = (T, B, np.dtype(dtype))
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) >= 4:  # training, validation and a ragged last chunk at most
                self._buffers.clear()
            buf = self._buffers[key] = {
                "a": np.empty((T, B, self.H), dtype),  # input projections; in backward, d loss / d a
                "h": np.empty((T + 1, B, self.H), dtype),  # h[0] is the carried-in state
            }
        if backward and "d" not in buf:  # evaluation never pays for these
            H = self.H
            buf.update({
                "d": np.empty((T, B, H), dtype),  # act'(a)
                "dh": np.empty((B, H), dtype),
                "dx": None if self.embed else np.empty((T, B, self.n_in), dtype),
                "dW": np.empty((max(self.n_in, H), H), dtype),  # weight products before +=
                "scatter": {},
            })
        return buf

    def forward(self, p: dict, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
        """x: ids (T, B) if embed else (T, B, D); h0: (B, H). Returns h_1..h_T, (T, B, H)."""
        k = self.keys
        W_xh, W_hh, b_h = p[k["W_xh"]], p[k["W_hh"]], p[k["b_h"]]
        T, B = x.shape[:2]
        buf = self._buf(T, B, W_hh.dtype)
        a, h = buf["a"], buf["h"]
        h[0] = h0
        if self.embed:
            # (T, B, H): x_t W_xh + b_h for one-hot x_t, as one gather from a (V, H) table
            np.take(W_xh + b_h, x, axis=0, out=a)
        else:
            np.matmul(x.reshape(T * B, -1), W_xh, out=a.reshape(T * B, -1))
            a += b_h
        act = self.activation
        for t in range(T):
            ht = h[t + 1]
            np.matmul(h[t], W_hh, out=ht)  # (B, H)
            ht += a[t]
            activate(act, ht, ht)
        self._x = x
        return h[1:]

    def backward(self, p: dict, dhs: np.ndarray, grads: dict, need_dx: bool = True):
        """dhs: d loss / d h_t from above, (T, B, H). Adds into grads; returns d loss / d x.

        Truncated BPTT: no gradient flows into the carried-in state h_0.
        """
        k = self.keys
        W_xh, W_hh = p[k["W_xh"]], p[k["W_hh"]]
        T, B, H = dhs.shape
        buf = self._buf(T, B, W_hh.dtype, backward=True)
        h, da, dact, dh = buf["h"], buf["a"], buf["d"], buf["dh"]
        activation_grad(self.activation, h[1:], dact)  # (T, B, H), one vectorised pass
        W_hhT = np.ascontiguousarray(W_hh.T)
        dh.fill(0)  # d loss / d h_t arriving from step t+1
        for t in range(T - 1, -1, -1):
            np.add(dhs[t], dh, out=da[t])
            da[t] *= dact[t]
            if t:
                np.matmul(da[t], W_hhT, out=dh)
        da2 = da.reshape(T * B, H)
        dW = buf["dW"][:H]
        np.matmul(h[:-1].reshape(T * B, H).T, da2, out=dW)  # sum over t of h_{t-1}^T da_t
        grads[k["W_hh"]] += dW
        grads[k["b_h"]] += da2.sum(axis=0)
        if self.embed:
            scatter_add_rows(grads[k["W_xh"]], self._x.reshape(-1), da2, buf["scatter"])
            return None
        x2 = self._x.reshape(T * B, -1)
        dW = buf["dW"][: self.n_in]
        np.matmul(x2.T, da2, out=dW)
        grads[k["W_xh"]] += dW
        if not need_dx:
            return None
        dx = buf["dx"]
        np.matmul(da2, W_xh.T, out=dx.reshape(T * B, -1))
        return dx

    def step(self, p: dict, x: np.ndarray, h: np.ndarray, out: np.ndarray) -> np.ndarray:
        """One time step for generation: x ids (B,) or (B, D), h (B, H) -> out (B, H)."""
        k = self.keys
        np.matmul(h, p[k["W_hh"]], out=out)
        out += p[k["W_xh"]][x] if self.embed else x @ p[k["W_xh"]]
        out += p[k["b_h"]]
        return activate(self.activation, out, out)
