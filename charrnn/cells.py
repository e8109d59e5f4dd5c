"""Recurrent layers, each a forward/backward pair over a whole (T, B) chunk.

Dimensions: T time steps, B streams, H hidden units, V vocabulary, D input width.
A layer keeps the activations of its last forward pass for its backward pass, in
buffers that are allocated once per (T, B) shape and reused every update.

Elman layer (Elman, 1990), row vectors:
    h_t = act(x_t W_xh + h_{t-1} W_hh + b_h)

LSTM layer (Hochreiter & Schmidhuber, 1997, with a forget gate), gate order i, f, o, g:
    [a_i a_f a_o a_g] = x_t W_x + h_{t-1} W_h + b          W_x (D, 4H), W_h (H, 4H), b (4H,)
    i, f, o = sigmoid(a_i), sigmoid(a_f), sigmoid(a_o);  g = tanh(a_g)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)                                     state (h_t, c_t)
The forget-gate bias b[H:2H] starts at 1, so the cell remembers by default.

GRU layer (Cho et al., 2014, in cuDNN/PyTorch's form: r multiplies h W_hn after the product),
gate order r, z, n:
    [x_r x_z x_n] = x_t W_x + b                              W_x (D, 3H), b (3H,)
    [h_r h_z h_n] = h_{t-1} W_h, then h_n += b_hn            W_h (H, 3H), b_hn (H,)
    r = sigmoid(x_r + h_r);  z = sigmoid(x_z + h_z)
    n = tanh(x_n + r * h_n)
    h_t = (1 - z) * n + z * h_{t-1}

Every cell computes its gates with one product per input, never one per gate.
The first layer's input is a one-hot row, so `x_t W_x` is the row gather `W_x[id_t]`.
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


def sigmoid(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    return activate("sigmoid", a, out)


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


class _HiddenState:
    """For cells whose whole state is h (Elman, GRU): (B, H), and the next layer sees it as is."""

    def zero_state(self, batch: int, dtype) -> np.ndarray:
        return np.zeros((batch, self.H), dtype=dtype)

    @staticmethod
    def output(state: np.ndarray) -> np.ndarray:
        """The part of a state the next layer sees: h itself."""
        return state

    def final_state(self, k: int | None = None) -> np.ndarray:
        """The state after step k (default: the last) of the last forward(), to carry into the next chunk."""
        return self._hs[-1 if k is None else k].copy()


class Elman(_HiddenState):
    """One Elman layer. `embed=True` takes ids and gathers rows of W_xh (the one-hot product)."""

    kind = "elman"  # reference.RECURRENCES[kind] is its recurrence in plain float64
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
        self._hs = h  # (T + 1, B, H): h_0..h_T, for final_state
        return h[1:]

    def backward(self, p: dict, dhs: np.ndarray, grads: dict, need_dx: bool = True,
                 need_dstate0: bool = False):
        """dhs: d loss / d h_t from above, (T, B, H). Adds into grads; returns d loss / d x.

        Truncated BPTT: no gradient flows into the carried-in state h_0. need_dstate0=True
        (an encoder-decoder's decoder) leaves d loss / d h_0 in self.dstate0, (B, H).
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
            if t or need_dstate0:
                np.matmul(da[t], W_hhT, out=dh)
        self.dstate0 = dh.copy() if need_dstate0 else None
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

    def step(self, p: dict, x: np.ndarray, h: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One time step for generation: x ids (B,) or (B, D), h (B, H) -> out (B, H), the new state."""
        k = self.keys
        if out is None:
            out = np.empty_like(h)
        np.matmul(h, p[k["W_hh"]], out=out)
        out += p[k["W_xh"]][x] if self.embed else x @ p[k["W_xh"]]
        out += p[k["b_h"]]
        return activate(self.activation, out, out)


class _Gated:
    """What LSTM and GRU share: G gates of H units, one input product x W_x and one h W_h per step.

    Parameters (plus `suffix` for layers above the first): W_x (D, G*H), W_h (H, G*H), b (G*H,).
    """

    n_gates = 0
    param_names: tuple = ("W_x", "W_h", "b")

    def __init__(self, n_in: int, hidden: int, embed: bool = False, suffix: str = ""):
        self.n_in, self.H, self.embed = n_in, hidden, embed
        self.keys = {name: name + suffix for name in self.param_names}
        self._buffers: dict = {}

    def shapes(self) -> dict:
        k, H, G = self.keys, self.H, self.n_gates
        return {k["W_x"]: (self.n_in, G * H), k["W_h"]: (H, G * H), k["b"]: (G * H,)}

    def init(self, rng: np.random.Generator, dtype) -> dict:
        # PyTorch's U(-1/sqrt(H), 1/sqrt(H)) for the weights; biases start at zero.
        bound = 1.0 / np.sqrt(self.H)
        return {name: (rng.uniform(-bound, bound, shape) if len(shape) == 2 else np.zeros(shape)).astype(dtype)
                for name, shape in self.shapes().items()}

    def _buf(self, T: int, B: int, dtype, names: dict) -> dict:
        key = (T, B, np.dtype(dtype))
        buf = self._buffers.get(key)
        if buf is None:
            if len(self._buffers) >= 4:  # training, validation and a ragged last chunk at most
                self._buffers.clear()
            buf = self._buffers[key] = {}
        for name, shape in names.items():
            if name not in buf:
                buf[name] = np.empty(shape, dtype)
        return buf

    def _project(self, p: dict, x: np.ndarray, out: np.ndarray) -> None:
        """out = x W_x + b for the whole chunk: (T, B, G*H)."""
        W_x = p[self.keys["W_x"]]
        T, B = x.shape[:2]
        if self.embed:
            np.take(W_x, x, axis=0, out=out)  # the one-hot product as a row gather
        else:
            np.matmul(x.reshape(T * B, -1), W_x, out=out.reshape(T * B, -1))
        out += p[self.keys["b"]]

    def _weight_grads(self, p: dict, grads: dict, buf: dict, h_prev: np.ndarray, dgx: np.ndarray,
                      dgh: np.ndarray, need_dx: bool):
        """Add the weight gradients from d loss / d gate pre-activations; return d loss / d x."""
        k = self.keys
        T, B, GH = dgx.shape
        H = self.H
        dgx2, dgh2 = dgx.reshape(T * B, GH), dgh.reshape(T * B, GH)
        if "dW" not in buf:
            buf["dW"] = np.empty((max(self.n_in, H), GH), dgx.dtype)
            buf["scatter"] = {}
        dW = buf["dW"][:H]
        np.matmul(h_prev.reshape(T * B, H).T, dgh2, out=dW)  # sum over t of h_{t-1}^T dg_t
        grads[k["W_h"]] += dW
        grads[k["b"]] += dgx2.sum(axis=0)
        if self.embed:
            scatter_add_rows(grads[k["W_x"]], self._x.reshape(-1), dgx2, buf["scatter"])
            return None
        dW = buf["dW"][: self.n_in]
        np.matmul(self._x.reshape(T * B, -1).T, dgx2, out=dW)
        grads[k["W_x"]] += dW
        if not need_dx:
            return None
        if "dx" not in buf:
            buf["dx"] = np.empty((T, B, self.n_in), dgx.dtype)
        dx = buf["dx"]
        np.matmul(dgx2, p[k["W_x"]].T, out=dx.reshape(T * B, -1))
        return dx

    def _input_row(self, p: dict, x: np.ndarray) -> np.ndarray:
        W_x = p[self.keys["W_x"]]
        return (W_x[x] if self.embed else x @ W_x) + p[self.keys["b"]]


class LSTM(_Gated):
    """One LSTM layer; its state is the pair (h, c), each (B, H). Gate order i, f, o, g."""

    kind = "lstm"
    n_gates = 4

    def init(self, rng: np.random.Generator, dtype) -> dict:
        params = super().init(rng, dtype)
        params[self.keys["b"]][self.H : 2 * self.H] = 1  # forget-gate bias 1: remember by default
        return params

    def zero_state(self, batch: int, dtype) -> tuple:
        return (np.zeros((batch, self.H), dtype=dtype), np.zeros((batch, self.H), dtype=dtype))

    @staticmethod
    def output(state: tuple) -> np.ndarray:
        return state[0]

    def final_state(self, k: int | None = None) -> tuple:
        k = -1 if k is None else k
        return (self._hs[k].copy(), self._cs[k].copy())

    def forward(self, p: dict, x: np.ndarray, state0: tuple) -> np.ndarray:
        """x: ids (T, B) if embed else (T, B, D); state0 (h0, c0). Returns h_1..h_T, (T, B, H)."""
        W_h = p[self.keys["W_h"]]
        T, B = x.shape[:2]
        H = self.H
        buf = self._buf(T, B, W_h.dtype, {"g": (T, B, 4 * H), "h": (T + 1, B, H), "c": (T + 1, B, H),
                                          "tc": (T, B, H), "tmp": (B, 4 * H)})
        g, h, c, tc, tmp = buf["g"], buf["h"], buf["c"], buf["tc"], buf["tmp"]
        h[0], c[0] = state0
        self._project(p, x, g)  # (T, B, 4H): x_t W_x + b
        for t in range(T):
            gt = g[t]
            np.matmul(h[t], W_h, out=tmp)  # (B, 4H)
            gt += tmp
            sigmoid(gt[:, : 3 * H], gt[:, : 3 * H])  # i, f, o
            np.tanh(gt[:, 3 * H :], out=gt[:, 3 * H :])  # g
            i, f, o, gg = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H : 3 * H], gt[:, 3 * H :]
            np.multiply(f, c[t], out=c[t + 1])
            np.multiply(i, gg, out=tmp[:, :H])
            c[t + 1] += tmp[:, :H]
            np.tanh(c[t + 1], out=tc[t])
            np.multiply(o, tc[t], out=h[t + 1])
        self._x, self._hs, self._cs = x, h, c
        return h[1:]

    def backward(self, p: dict, dhs: np.ndarray, grads: dict, need_dx: bool = True,
                 need_dstate0: bool = False, dcs: np.ndarray | None = None):
        """dhs: d loss / d h_t from above, (T, B, H). Adds into grads; returns d loss / d x.

        Truncated BPTT: no gradient flows into the carried-in state (h_0, c_0).
        need_dstate0=True leaves d loss / d (h_0, c_0) in self.dstate0; dcs (T, B, H), if
        given, is d loss / d c_t from outside the layer (an encoder's state read mid-chunk).
        """
        W_h = p[self.keys["W_h"]]
        T, B, H = dhs.shape
        buf = self._buf(T, B, W_h.dtype, {"da": (T, B, 4 * H), "dtc": (T, B, H), "dh": (B, H),
                                          "dc": (B, H), "tmpH": (B, H)})
        g, c, tc = buf["g"], buf["c"], buf["tc"]
        da, dtc, dh, dc, tmp = buf["da"], buf["dtc"], buf["dh"], buf["dc"], buf["tmpH"]
        # Activation derivatives for the whole chunk in a few vectorised passes:
        # sigmoid' = s (1 - s) for i, f, o; tanh' = 1 - g^2; and 1 - tanh(c)^2.
        activation_grad("sigmoid", g[..., : 3 * H], da[..., : 3 * H])
        activation_grad("tanh", g[..., 3 * H :], da[..., 3 * H :])
        activation_grad("tanh", tc, dtc)
        W_hT = np.ascontiguousarray(W_h.T)  # (4H, H)
        dh.fill(0)  # d loss / d h_t arriving from step t+1
        dc.fill(0)  # d loss / d c_t arriving from step t+1
        for t in range(T - 1, -1, -1):
            gt, dat = g[t], da[t]
            i, f, o, gg = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H : 3 * H], gt[:, 3 * H :]
            dh += dhs[t]
            if dcs is not None:
                dc += dcs[t]
            np.multiply(dh, o, out=tmp)  # dc_t += dh_t o (1 - tanh(c_t)^2)
            tmp *= dtc[t]
            dc += tmp
            np.multiply(dh, tc[t], out=tmp)  # d o
            dat[:, 2 * H : 3 * H] *= tmp
            np.multiply(dc, gg, out=tmp)  # d i
            dat[:, :H] *= tmp
            np.multiply(dc, c[t], out=tmp)  # d f
            dat[:, H : 2 * H] *= tmp
            np.multiply(dc, i, out=tmp)  # d g
            dat[:, 3 * H :] *= tmp
            dc *= f  # d loss / d c_{t-1}
            if t or need_dstate0:
                np.matmul(dat, W_hT, out=dh)  # d loss / d h_{t-1} through the gates
        self.dstate0 = (dh.copy(), dc.copy()) if need_dstate0 else None
        return self._weight_grads(p, grads, buf, buf["h"][:-1], da, da, need_dx)

    def step(self, p: dict, x: np.ndarray, state: tuple) -> tuple:
        """One time step for generation: x ids (B,) or (B, D), state (h, c) -> new (h, c)."""
        h, c = state
        H = self.H
        a = self._input_row(p, x) + h @ p[self.keys["W_h"]]  # (B, 4H)
        sigmoid(a[:, : 3 * H], a[:, : 3 * H])
        np.tanh(a[:, 3 * H :], out=a[:, 3 * H :])
        c = a[:, H : 2 * H] * c + a[:, :H] * a[:, 3 * H :]
        return (a[:, 2 * H : 3 * H] * np.tanh(c), c)


class GRU(_HiddenState, _Gated):
    """One GRU layer; its state is h, (B, H). Gate order r, z, n; b_hn sits inside r * (...)."""

    kind = "gru"
    n_gates = 3
    param_names = ("W_x", "W_h", "b", "b_hn")

    def shapes(self) -> dict:
        shapes = super().shapes()
        shapes[self.keys["b_hn"]] = (self.H,)
        return shapes

    def forward(self, p: dict, x: np.ndarray, h0: np.ndarray) -> np.ndarray:
        """x: ids (T, B) if embed else (T, B, D); h0 (B, H). Returns h_1..h_T, (T, B, H)."""
        W_h, b_hn = p[self.keys["W_h"]], p[self.keys["b_hn"]]
        T, B = x.shape[:2]
        H = self.H
        buf = self._buf(T, B, W_h.dtype, {"g": (T, B, 3 * H), "gh": (T, B, 3 * H), "h": (T + 1, B, H),
                                          "tmp": (B, H)})
        g, gh, h, tmp = buf["g"], buf["gh"], buf["h"], buf["tmp"]
        h[0] = h0
        self._project(p, x, g)  # (T, B, 3H): x_t W_x + b
        for t in range(T):
            gt, ght = g[t], gh[t]
            np.matmul(h[t], W_h, out=ght)  # (B, 3H): h_r, h_z, h_n
            ght[:, 2 * H :] += b_hn
            gt[:, : 2 * H] += ght[:, : 2 * H]
            sigmoid(gt[:, : 2 * H], gt[:, : 2 * H])  # r, z
            r, z, n = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H :]
            np.multiply(r, ght[:, 2 * H :], out=tmp)
            n += tmp
            np.tanh(n, out=n)
            np.subtract(h[t], n, out=h[t + 1])  # h_t = n + z (h_{t-1} - n)
            h[t + 1] *= z
            h[t + 1] += n
        self._x, self._hs = x, h
        return h[1:]

    def backward(self, p: dict, dhs: np.ndarray, grads: dict, need_dx: bool = True,
                 need_dstate0: bool = False):
        """dhs: d loss / d h_t from above, (T, B, H). Adds into grads; returns d loss / d x.

        Truncated BPTT: no gradient flows into the carried-in state h_0. need_dstate0=True
        leaves d loss / d h_0 in self.dstate0, (B, H).
        """
        k = self.keys
        W_h = p[k["W_h"]]
        T, B, H = dhs.shape
        buf = self._buf(T, B, W_h.dtype, {"dgx": (T, B, 3 * H), "dgh": (T, B, 3 * H), "dh": (B, H),
                                          "tmpH": (B, H), "tmp2": (B, H)})
        g, gh, h = buf["g"], buf["gh"], buf["h"]
        dgx, dgh, dh, tmp, tmp2 = buf["dgx"], buf["dgh"], buf["dh"], buf["tmpH"], buf["tmp2"]
        # Derivatives for the whole chunk: r (1 - r), z (1 - z), 1 - n^2.
        activation_grad("sigmoid", g[..., : 2 * H], dgx[..., : 2 * H])
        activation_grad("tanh", g[..., 2 * H :], dgx[..., 2 * H :])
        W_hT = np.ascontiguousarray(W_h.T)  # (3H, H)
        dh.fill(0)
        for t in range(T - 1, -1, -1):
            gt, dgxt, dght = g[t], dgx[t], dgh[t]
            r, z, n = gt[:, :H], gt[:, H : 2 * H], gt[:, 2 * H :]
            dh += dhs[t]
            np.subtract(h[t], n, out=tmp)  # d z = dh (h_{t-1} - n)
            tmp *= dh
            dgxt[:, H : 2 * H] *= tmp
            np.subtract(1, z, out=tmp)  # d a_n = dh (1 - z) (1 - n^2)
            tmp *= dh
            dgxt[:, 2 * H :] *= tmp
            np.multiply(dgxt[:, 2 * H :], gh[t][:, 2 * H :], out=tmp)  # d r = d a_n h_n
            dgxt[:, :H] *= tmp
            dght[:, : 2 * H] = dgxt[:, : 2 * H]
            np.multiply(dgxt[:, 2 * H :], r, out=dght[:, 2 * H :])  # d h_n = d a_n r
            np.multiply(dh, z, out=tmp2)  # the direct path h_{t-1} -> h_t
            if t or need_dstate0:
                np.matmul(dght, W_hT, out=dh)
                dh += tmp2
        self.dstate0 = dh.copy() if need_dstate0 else None
        grads[k["b_hn"]] += dgh[..., 2 * H :].reshape(T * B, H).sum(axis=0)
        return self._weight_grads(p, grads, buf, h[:-1], dgx, dgh, need_dx)

    def step(self, p: dict, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """One time step for generation: x ids (B,) or (B, D), h (B, H) -> the new h."""
        H = self.H
        a = self._input_row(p, x)  # (B, 3H)
        ah = h @ p[self.keys["W_h"]]
        ah[:, 2 * H :] += p[self.keys["b_hn"]]
        rz = a[:, : 2 * H] + ah[:, : 2 * H]
        sigmoid(rz, rz)
        n = np.tanh(a[:, 2 * H :] + rz[:, :H] * ah[:, 2 * H :])
        return n + rz[:, H:] * (h - n)


CELL_CLASSES = {"elman": Elman, "lstm": LSTM, "gru": GRU}
