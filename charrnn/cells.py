"""Recurrent layers, each a forward/backward pair over a whole (T, B) chunk.

Dimensions: T time steps, B streams, H hidden units, V vocabulary, D input width, G gates.

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

The three are one family (`Cell`): the same constructor, parameters W_x (D, G*H), W_h (H, G*H)
and b (G*H,) (Elman names them W_xh, W_hh, b_h), the same buffers, input projection and
weight-gradient tail; each cell writes only its gate maths (`_recur`, `_recur_back`, `step`).

Layout. The interface is batch-major, (T, B, H) like the equations' rows; inside, every
per-step array is feature-major, (T, G*H, B): step t is one contiguous block, every gate a
contiguous (H, B) part of it, and the step's product is W_h^T (G*H, H) @ h_{t-1} (H, B),
which OpenBLAS runs faster than h (B, H) @ W_h. `forward`/`backward` with feature_major=True
take and return the (T, H, B) form directly, as the model's stacked layers use them.
Products over the whole chunk (the weight gradients) read (H, T*B) copies of the states and
of the gradients, once the backward loop has finished (`Cell._weight_grads`).
"""
from __future__ import annotations

from dataclasses import dataclass

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


def _half_tanh_to_sigmoid(s: np.ndarray) -> None:
    """In place tanh(a/2) -> sigmoid(a) = (1 + tanh(a/2)) / 2."""
    s *= 0.5
    s += 0.5


class Workspace:
    """Arrays reused from call to call: one per (name, shape, dtype), made on first use.

    Training alternates few shapes (the training chunk, validation, a ragged last chunk), so
    a few sets of about 20 arrays live at once; past 128 arrays everything is dropped and made
    again (whoever still holds one keeps it: dropping is safe, only the reuse is lost).
    """

    def __init__(self):
        self._arrays: dict = {}

    def get(self, name: str, shape: tuple, dtype) -> np.ndarray:
        key = (name, shape, np.dtype(dtype))
        a = self._arrays.get(key)
        if a is None:
            if len(self._arrays) >= 128:
                self._arrays.clear()
            a = self._arrays[key] = np.empty(shape, dtype)
        return a

    def zeros(self, name: str, shape: tuple, dtype) -> np.ndarray:
        """Like get, but all zeros when made (the caller leaves it so)."""
        key = (name, shape, np.dtype(dtype))
        if key not in self._arrays:
            self.get(name, shape, dtype).fill(0)
        return self._arrays[key]


@dataclass
class Trace:
    """What a layer's forward pass keeps for its backward pass (feature-major arrays).

    x: the input, ids (T, B) for the first layer, else (T, D, B); x2: the input as (D, T*B)
    for the weight gradient (None for ids); h: (T + 1, H, B), h_0..h_T; hP: the same as
    (H, T + 1, B), for products over the whole chunk; gates: (T, G*H, B) after their
    nonlinearities; c, tanh_c: the LSTM's cells (T + 1, H, B) and tanh(c_1..c_T) (T, H, B);
    hn: the GRU's h_{t-1} W_hn + b_hn (T, H, B).
    """

    x: np.ndarray
    x2: np.ndarray | None
    h: np.ndarray
    hP: np.ndarray
    gates: np.ndarray
    c: np.ndarray | None = None
    tanh_c: np.ndarray | None = None
    hn: np.ndarray | None = None


class Cell:
    """One recurrent layer. `embed=True` takes ids and gathers rows of W_x (the one-hot product).

    Subclasses set `kind` (the recurrence's name, as configs and gradflow's reference use it),
    `n_gates` (G) and the gate maths; `names` maps the roles W_x, W_h, b to checkpoint names.
    """

    kind = ""
    n_gates = 1
    names = {"W_x": "W_x", "W_h": "W_h", "b": "b"}
    extra_params: tuple = ()  # names of (H,) parameters beyond the three (the GRU's b_hn)
    sigmoid_rows = 0  # leading pre-activation rows that go through a sigmoid (computed as tanh(a/2))
    # Whether _recur writes h_1..h_T into trace.hP as well, and _recur_back d loss / d
    # pre-activation into the (R, T, B) buffer "daP" (the compiled loops, fused.py, do, for
    # the cost of a second store): the products over the chunk then need no copy pass.
    writes_columns = False

    def __init__(self, n_in: int, hidden: int, activation: str = "tanh", embed: bool = False, suffix: str = ""):
        self.n_in, self.H, self.activation, self.embed = n_in, hidden, activation, embed
        self.param_names = tuple(self.names.values()) + self.extra_params
        self.keys = {name: name + suffix for name in self.param_names}
        self.key_x, self.key_h, self.key_b = (self.keys[self.names[r]] for r in ("W_x", "W_h", "b"))
        self.ws = Workspace()
        self.trace: Trace | None = None
        self.dstate0 = None  # d loss / d carried-in state, after backward(need_dstate0=True)
        self.x_side = self.h_side = slice(0, self.n_gates * hidden)  # rows of _grad_buffer()

    # -- parameters ---------------------------------------------------------------------
    def shapes(self) -> dict:
        GH = self.n_gates * self.H
        shapes = {self.key_x: (self.n_in, GH), self.key_h: (self.H, GH), self.key_b: (GH,)}
        shapes.update({self.keys[n]: (self.H,) for n in self.extra_params})
        return shapes

    def init(self, rng: np.random.Generator, dtype) -> dict:
        # U(-1/sqrt(H), 1/sqrt(H)) as PyTorch's nn.RNN/LSTM/GRU: W_hh's spectral radius is
        # about 1/sqrt(3), so the state neither explodes nor, with tanh, saturates at the
        # start; biases start at zero. (Drawn in this order, W_x then W_h, for every cell.)
        bound = 1.0 / np.sqrt(self.H)
        return {name: (rng.uniform(-bound, bound, shape) if len(shape) == 2 else np.zeros(shape)).astype(dtype)
                for name, shape in self.shapes().items()}

    def flops_per_char(self) -> int:
        """Training FLOPs per character: forward and the two backward products (one-hot: a gather)."""
        GH = self.n_gates * self.H
        return 6 * GH * (self.H + (0 if self.embed else self.n_in))

    # -- state ----------------------------------------------------------------------------
    def zero_state(self, batch: int, dtype):
        return np.zeros((batch, self.H), dtype=dtype)

    @staticmethod
    def output(state) -> np.ndarray:
        """The part of a state the next layer sees: h itself."""
        return state

    def final_state(self, k: int | None = None):
        """The state after step k (default: the last) of the last forward(), (B, H), to carry on."""
        return self.trace.h[-1 if k is None else k].T.copy()

    def _set_state0(self, state0, tr: Trace) -> None:
        tr.h[0] = state0.T

    # -- forward --------------------------------------------------------------------------
    def forward(self, p: dict, x: np.ndarray, state0, feature_major: bool = False) -> np.ndarray:
        """h_1..h_T: (T, B, H) (a transposed view), or (T, H, B) with feature_major=True.

        x: ids (T, B) if embed, else (T, B, D), or (T, D, B) with feature_major=True.
        state0: (B, H), or the LSTM's pair (h0, c0).
        """
        T, B = x.shape[0], (x.shape[1] if self.embed or not feature_major else x.shape[2])
        if not self.embed and not feature_major:
            x = x.transpose(0, 2, 1)  # (T, D, B) view
        W_h = p[self.key_h]
        dt = W_h.dtype
        H, GH = self.H, self.n_gates * self.H
        tr = self.trace = Trace(x=x, x2=None, h=self.ws.get("h", (T + 1, H, B), dt),
                                hP=self.ws.get("hP", (H, T + 1, B), dt), gates=self.ws.get("g", (T, GH, B), dt))
        self._set_state0(state0, tr)
        # W_h^T once per chunk, its sigmoid rows halved (exactly) so that one tanh call
        # covers every gate: sigmoid(a) = (1 + tanh(a/2)) / 2.
        W_hT = self.ws.get("W_hT", (GH, H), dt)
        self._transpose_halving(W_h, W_hT)
        self._project(p, x, tr)
        self._recur(p, W_hT, tr)
        if self.writes_columns:
            tr.hP[:, 0] = tr.h[0]
        else:
            np.copyto(tr.hP, tr.h.transpose(1, 0, 2))
        return tr.h[1:] if feature_major else tr.h[1:].transpose(0, 2, 1)

    def _project(self, p: dict, x: np.ndarray, tr: Trace) -> None:
        """gates[t] = (x_t W_x + b)^T for every t, sigmoid rows halved."""
        W_x, b = p[self.key_x], p[self.key_b]
        g = tr.gates
        T, GH, B = g.shape
        table = self.ws.get("table", (GH, W_x.shape[0] if self.embed else 1), W_x.dtype)
        if self.embed:  # the one-hot product: gather columns of (W_x + b)^T
            self._transpose_halving(W_x, table, b)
            self._gather(table, x, g)
            return
        W_xT = self.ws.get("W_xT", (GH, W_x.shape[0]), W_x.dtype)
        self._transpose_halving(W_x, W_xT)
        np.copyto(table[:, 0], b)
        if self.sigmoid_rows:
            table[: self.sigmoid_rows] *= 0.5
        self._matmul(W_xT, x, g)  # one product per step, (G*H, D) @ (D, B)
        g += table

    def _transpose_halving(self, W: np.ndarray, out: np.ndarray, bias: np.ndarray | None = None) -> None:
        """out = (W + bias)^T (W^T without a bias), its sigmoid rows halved (exactly: a power of two)."""
        if bias is None:
            np.copyto(out, W.T)
        else:
            np.add(W.T, bias[:, None], out=out)
        if self.sigmoid_rows:
            out[: self.sigmoid_rows] *= 0.5

    @staticmethod
    def _matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
        """out = a @ b: the chunk's products (the compiled cells split them between their threads)."""
        np.matmul(a, b, out=out)

    @staticmethod
    def _gather(table: np.ndarray, x: np.ndarray, g: np.ndarray) -> None:
        """g[t] = the columns x[t] of table, (R, V) -> (T, R, B)."""
        for t in range(len(x)):
            np.take(table, x[t], axis=1, out=g[t])

    # -- backward -------------------------------------------------------------------------
    def backward(self, p: dict, dhs: np.ndarray, grads: dict, need_dx: bool = True,
                 need_dstate0: bool = False, dcs: np.ndarray | None = None, feature_major: bool = False):
        """dhs: d loss / d h_t from above, (T, B, H) or (T, H, B) with feature_major=True.

        Adds into grads; returns d loss / d x in the input's layout (None for ids or without
        need_dx). Truncated BPTT: no gradient flows into the carried-in state, unless
        need_dstate0=True, which leaves d loss / d state_0 in self.dstate0 ((B, H), or the
        LSTM's pair). dcs (T, B, H), the LSTM only: d loss / d c_t from outside the layer.
        """
        tr = self.trace
        T, GH, B = tr.gates.shape
        dt = tr.gates.dtype
        if not feature_major:
            fm = self.ws.get("dhs", (T, self.H, B), dt)
            np.copyto(fm, dhs.transpose(0, 2, 1))
            dhs = fm
        da = self._grad_buffer(T, B, dt)
        self._recur_back(p, dhs, tr, da, need_dstate0, dcs)
        dx = self._weight_grads(p, grads, da, need_dx)
        if dx is None or feature_major:
            return dx
        return dx.transpose(0, 2, 1)

    def _weight_grads(self, p: dict, grads: dict, da: np.ndarray, need_dx: bool):
        """Add every weight's gradient into grads, each one product over the whole chunk;
        returns d loss / d x (T, D, B), or None.

        One copy lays the steps of d loss / d pre-activation side by side, (R, T*B) (none when
        the step loops stored them there already: `writes_columns`), and each gradient (d W_h,
        d W_x or the one-hot scatter, d b, d x) is then one large product, which BLAS runs at
        its best and, with several BLAS threads, in parallel. (Blocks of steps handed to a
        worker thread beside the recurrence were measured slower on 2 cores than these
        products with 2 BLAS threads after it, on an idle machine and a busy one alike;
        docs/performance.md.)
        """
        ws, tr = self.ws, self.trace
        T, R, B = da.shape
        H, GH, n, dt = self.H, self.n_gates * self.H, T * B, da.dtype
        if not self.writes_columns:
            self._store_grad_columns(da)
        daP = self._grad_columns(da).reshape(R, n)
        dg = daP[self.x_side]  # (G*H, n), the parameters' gate order
        dW = ws.get("dW", (max(self.n_in, H), GH), dt)
        self._matmul(tr.hP[:, :T].reshape(H, n), daP[self.h_side].T, dW[:H])
        self._add_dW_h(grads, dW[:H])
        ones = ws.get("ones", (n,), dt)
        ones.fill(1)  # row sums as products: 4x faster than .sum(axis=1)
        grads[self.key_b] += dg @ ones
        self._extra_grads(grads, daP, ones)
        if self.embed:  # d W_x[id] += dg's column, for every (step, stream) column
            dWxT = ws.get("dWxT", (GH, p[self.key_x].shape[0]), dt)
            self._scatter_columns(dg, tr.x.reshape(-1), dWxT)
            grads[self.key_x] += dWxT.T
        else:
            x2 = tr.x2 if tr.x2 is not None else _columns(tr.x, ws)
            self._matmul(x2, dg.T, dW[: self.n_in])
            grads[self.key_x] += dW[: self.n_in]
        if not need_dx or self.embed:
            return None
        dx = ws.get("dx", (T, self.n_in, B), dt)
        self._matmul(p[self.key_x], da[:, self.x_side], dx)  # (D, G*H) @ (G*H, B) per step
        return dx

    def _grad_columns(self, da: np.ndarray) -> np.ndarray:
        """The (R, T, B) buffer the chunk's weight products read d loss / d pre-activation from,
        for da (T, R, B)."""
        T, R, B = da.shape
        return self.ws.get("daP", (R, T, B), da.dtype)

    def _store_grad_columns(self, da: np.ndarray) -> None:
        """Copy da (T, R, B) into _grad_columns' (R, T, B) buffer: what the compiled loops
        store as they go."""
        np.copyto(self._grad_columns(da), da.transpose(1, 0, 2))

    def _scatter_columns(self, dg: np.ndarray, ids: np.ndarray, out: np.ndarray) -> None:
        """out (R, V) = the columns of dg (R, n) summed by id: the one-hot's transpose, as the
        product dg @ one_hot (n, V) (faster than one_hot @ dg^T into (V, R))."""
        V, n = out.shape[1], dg.shape[1]
        onehot, columns = self.ws.zeros("onehot", (V, n), dg.dtype), np.arange(n)
        onehot[ids, columns] = 1
        np.matmul(dg, onehot.T, out=out)
        onehot[ids, columns] = 0  # all zeros again for the next call

    def _grad_buffer(self, T: int, B: int, dt) -> np.ndarray:
        """Where the recurrence leaves d loss / d pre-activation, (T, R, B): rows `x_side` are
        the input side's (W_x, b; in the parameters' gate order), rows `h_side` the recurrent
        side's (W_h). They are the same rows (all of them) but in the GRU."""
        return self.ws.get("da", (T, self.n_gates * self.H, B), dt)

    def _add_dW_h(self, grads: dict, dW: np.ndarray) -> None:
        """Add h_{t-1} summed against the `h_side` rows, (H, R_h), into W_h's gradient."""
        grads[self.key_h] += dW

    def _extra_grads(self, grads: dict, da: np.ndarray, ones: np.ndarray) -> None:
        """Gradients of parameters beyond W_x, W_h, b, from every row of d loss / d pre-activation
        over the chunk's n (step, stream) columns, (R, n); `ones` (n,) sums rows as a product."""

    # -- generation -----------------------------------------------------------------------
    def _input_row(self, p: dict, x: np.ndarray) -> np.ndarray:
        W_x = p[self.key_x]
        a = W_x[x] if self.embed else x @ W_x  # a new array
        a += p[self.key_b]
        return a


def _columns(x: np.ndarray, ws: Workspace) -> np.ndarray:
    """(T, D, B) -> (D, T*B), a copy with the steps side by side."""
    T, D, B = x.shape
    out = ws.get("x2", (D, T, B), x.dtype)
    np.copyto(out, x.transpose(1, 0, 2))
    return out.reshape(D, T * B)


class Elman(Cell):
    """One Elman layer: h_t = act(x_t W_xh + h_{t-1} W_hh + b_h)."""

    kind = "elman"
    n_gates = 1
    names = {"W_x": "W_xh", "W_h": "W_hh", "b": "b_h"}

    def _recur(self, p: dict, W_hT: np.ndarray, tr: Trace) -> None:
        a, h, act = tr.gates, tr.h, self.activation
        for t in range(len(a)):
            ht = h[t + 1]
            np.matmul(W_hT, h[t], out=ht)  # (H, B)
            ht += a[t]
            activate(act, ht, ht)

    def _grad_buffer(self, T: int, B: int, dt) -> np.ndarray:
        return self.trace.gates  # the input projections are spent: d loss / d a goes there

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: Trace, da, need_dstate0: bool, dcs):
        W_hh = p[self.key_h]
        T, H, B = dhs.shape
        activation_grad(self.activation, tr.h[1:], da)  # act'(a_t), all steps in one pass
        dh = self.ws.get("dh", (H, B), da.dtype)
        dh.fill(0)  # d loss / d h_t arriving from step t+1
        for t in range(T - 1, -1, -1):
            dh += dhs[t]
            da[t] *= dh
            if t or need_dstate0:
                np.matmul(W_hh, da[t], out=dh)  # (H, H) @ (H, B)
        self.dstate0 = dh.T.copy() if need_dstate0 else None

    def step(self, p: dict, x: np.ndarray, h: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """One time step for generation: x ids (B,) or (B, D), h (B, H) -> out (B, H), the new state."""
        if out is None:
            out = np.empty_like(h)
        np.matmul(h, p[self.key_h], out=out)
        out += p[self.key_x][x] if self.embed else x @ p[self.key_x]
        out += p[self.key_b]
        return activate(self.activation, out, out)


class LSTM(Cell):
    """One LSTM layer; its state is the pair (h, c), each (B, H). Gate order i, f, o, g."""

    kind = "lstm"
    n_gates = 4

    @property
    def sigmoid_rows(self):
        return 3 * self.H

    def init(self, rng: np.random.Generator, dtype) -> dict:
        params = super().init(rng, dtype)
        params[self.key_b][self.H : 2 * self.H] = 1  # forget-gate bias 1: remember by default
        return params

    def zero_state(self, batch: int, dtype) -> tuple:
        return (np.zeros((batch, self.H), dtype=dtype), np.zeros((batch, self.H), dtype=dtype))

    @staticmethod
    def output(state: tuple) -> np.ndarray:
        return state[0]

    def final_state(self, k: int | None = None) -> tuple:
        k = -1 if k is None else k
        return (self.trace.h[k].T.copy(), self.trace.c[k].T.copy())

    def _set_state0(self, state0, tr: Trace) -> None:
        T, H, B = tr.gates.shape[0], self.H, tr.h.shape[2]
        dt = tr.h.dtype
        tr.c, tr.tanh_c = self.ws.get("c", (T + 1, H, B), dt), self.ws.get("tc", (T, H, B), dt)
        tr.h[0], tr.c[0] = state0[0].T, state0[1].T

    def _recur(self, p: dict, W_hT: np.ndarray, tr: Trace) -> None:
        g, h, c, tc = tr.gates, tr.h, tr.c, tr.tanh_c
        T, GH, B = g.shape
        H = self.H
        g4 = g.reshape(T, 4, H, B)
        tmp, tmpH = self.ws.get("tmp", (GH, B), g.dtype), self.ws.get("tmpH", (H, B), g.dtype)
        for t in range(T):
            gt = g[t]
            np.matmul(W_hT, h[t], out=tmp)  # (4H, B)
            gt += tmp
            np.tanh(gt, out=gt)  # i, f, o hold tanh(a/2) (their rows of W were halved), g tanh(a)
            _half_tanh_to_sigmoid(gt[: 3 * H])
            i, f, o, gg = g4[t]
            ct = c[t + 1]
            np.multiply(f, c[t], out=ct)
            np.multiply(i, gg, out=tmpH)
            ct += tmpH
            np.tanh(ct, out=tc[t])
            np.multiply(o, tc[t], out=h[t + 1])

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: Trace, da, need_dstate0: bool, dcs):
        W_h = p[self.key_h]
        T, H, B = dhs.shape
        g, c, tc = tr.gates, tr.c, tr.tanh_c
        dt = g.dtype
        g4, q = g.reshape(T, 4, H, B), da.reshape(T, 4, H, B)
        qc = self.ws.get("qc", (T, H, B), dt)
        # Every factor that does not depend on the gradient, for all steps in a few passes:
        # d a_i = dc g s_i(1-s_i), d a_f = dc c_{t-1} s_f(1-s_f), d a_o = dh tanh(c) s_o(1-s_o),
        # d a_g = dc i (1-g^2), and dc_t += dh o (1 - tanh(c_t)^2).
        activation_grad("sigmoid", g[:, : 3 * H], da[:, : 3 * H])
        q[:, 0] *= g4[:, 3]
        q[:, 1] *= c[:-1]
        q[:, 2] *= tc
        activation_grad("tanh", g4[:, 3], q[:, 3])
        q[:, 3] *= g4[:, 0]
        activation_grad("tanh", tc, qc)
        qc *= g4[:, 2]
        if dcs is not None:
            dcs_fm = self.ws.get("dcs", (T, H, B), dt)
            np.copyto(dcs_fm, dcs.transpose(0, 2, 1))
        dh, dc, tmp = (self.ws.get(n, (H, B), dt) for n in ("dh", "dc", "tmpH"))
        dh.fill(0)  # d loss / d h_t arriving from step t+1
        dc.fill(0)  # d loss / d c_t arriving from step t+1
        for t in range(T - 1, -1, -1):
            dh += dhs[t]
            if dcs is not None:
                dc += dcs_fm[t]
            np.multiply(dh, qc[t], out=tmp)
            dc += tmp
            qt = q[t]
            qt[:2] *= dc  # d a_i, d a_f
            qt[2] *= dh  # d a_o
            qt[3] *= dc  # d a_g
            dc *= g4[t, 1]  # d loss / d c_{t-1} = dc f
            if t or need_dstate0:
                np.matmul(W_h, da[t], out=dh)  # d loss / d h_{t-1} through the gates
        self.dstate0 = (dh.T.copy(), dc.T.copy()) if need_dstate0 else None

    def step(self, p: dict, x: np.ndarray, state: tuple) -> tuple:
        """One time step for generation: x ids (B,) or (B, D), state (h, c) -> new (h, c)."""
        h, c = state
        H = self.H
        a = self._input_row(p, x) + h @ p[self.key_h]  # (B, 4H)
        sigmoid(a[:, : 3 * H], a[:, : 3 * H])
        np.tanh(a[:, 3 * H :], out=a[:, 3 * H :])
        c = a[:, H : 2 * H] * c + a[:, :H] * a[:, 3 * H :]
        return (a[:, 2 * H : 3 * H] * np.tanh(c), c)


class GRU(Cell):
    """One GRU layer; its state is h, (B, H). Gate order r, z, n; b_hn sits inside r * (...)."""

    kind = "gru"
    n_gates = 3
    extra_params = ("b_hn",)

    @property
    def sigmoid_rows(self):
        return 2 * self.H

    def _set_state0(self, state0, tr: Trace) -> None:
        T, H, B = tr.gates.shape[0], self.H, tr.h.shape[2]
        tr.hn = self.ws.get("hn", (T, H, B), tr.h.dtype)
        tr.h[0] = state0.T

    def _recur(self, p: dict, W_hT: np.ndarray, tr: Trace) -> None:
        g, h, hn = tr.gates, tr.h, tr.hn
        T, GH, B = g.shape
        H = self.H
        b_hn = p[self.keys["b_hn"]][:, None]
        g3 = g.reshape(T, 3, H, B)
        ght = self.ws.get("tmp", (GH, B), g.dtype)
        for t in range(T):
            np.matmul(W_hT, h[t], out=ght)  # (3H, B): h_r/2, h_z/2, h_n
            np.add(ght[2 * H :], b_hn, out=hn[t])
            rz = g[t, : 2 * H]
            rz += ght[: 2 * H]
            np.tanh(rz, out=rz)
            _half_tanh_to_sigmoid(rz)
            r, z, n = g3[t]
            ht = h[t + 1]
            np.multiply(r, hn[t], out=ht)
            n += ht
            np.tanh(n, out=n)
            np.subtract(h[t], n, out=ht)  # h_t = n + z (h_{t-1} - n)
            ht *= z
            ht += n

    # d loss / d pre-activation, (T, 4H, B), rows [d h_n | d a_r | d a_z | d a_n]: the recurrent
    # side (h_n = h W_hn + b_hn, r, z) is rows 0:3H, the input side (r, z, n) rows H:4H, each
    # contiguous, so no step copies r and z from one side to the other. The step's product
    # takes W_h's columns in the same order, n first (a copy made once per backward pass).
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.h_side, self.x_side = slice(0, 3 * self.H), slice(self.H, 4 * self.H)

    def _grad_buffer(self, T: int, B: int, dt) -> np.ndarray:
        return self.ws.get("da", (T, 4 * self.H, B), dt)

    def _recur_back(self, p: dict, dhs: np.ndarray, tr: Trace, da, need_dstate0: bool, dcs):
        T, H, B = dhs.shape
        g, h, hn = tr.gates, tr.h, tr.hn
        dt = g.dtype
        W_h = self._W_h_nrz(p)
        g3, q = g.reshape(T, 3, H, B), da.reshape(T, 4, H, B)
        # The factors that do not depend on the gradient, all steps at once:
        # d a_z = dh (h_{t-1} - n) z(1-z), d a_n = dh (1-z)(1-n^2), d a_r = d a_n hn r(1-r).
        activation_grad("sigmoid", g[:, : 2 * H], da[:, H : 3 * H])
        q[:, 1] *= hn
        tmpT = self.ws.get("tmpT", (T, H, B), dt)
        np.subtract(h[:-1], g3[:, 2], out=tmpT)
        q[:, 2] *= tmpT
        activation_grad("tanh", g3[:, 2], q[:, 3])
        np.subtract(1, g3[:, 1], out=tmpT)
        q[:, 3] *= tmpT
        dh, direct = self.ws.get("dh", (H, B), dt), self.ws.get("tmp2", (H, B), dt)
        dh.fill(0)
        for t in range(T - 1, -1, -1):
            dh += dhs[t]
            qt = q[t]
            qt[2:] *= dh  # d a_z, d a_n
            qt[1] *= qt[3]  # d a_r
            np.multiply(qt[3], g3[t, 0], out=qt[0])  # d h_n = d a_n r
            if t or need_dstate0:
                np.multiply(dh, g3[t, 1], out=direct)  # the path h_{t-1} -> h_t: dh z
                np.matmul(W_h, da[t, : 3 * H], out=dh)
                dh += direct
        self.dstate0 = dh.T.copy() if need_dstate0 else None

    def _W_h_nrz(self, p: dict) -> np.ndarray:
        """W_h with its columns in the gradient rows' order n, r, z (a copy, once per pass)."""
        H, W_h = self.H, p[self.key_h]
        out = self.ws.get("W_h_nrz", W_h.shape, W_h.dtype)
        np.copyto(out[:, :H], W_h[:, 2 * H :])
        np.copyto(out[:, H:], W_h[:, : 2 * H])
        return out

    def _add_dW_h(self, grads: dict, dW: np.ndarray) -> None:
        H, dW_h = self.H, grads[self.key_h]
        dW_h[:, 2 * H :] += dW[:, :H]  # n
        dW_h[:, : 2 * H] += dW[:, H:]  # r, z

    def _extra_grads(self, grads: dict, da: np.ndarray, ones: np.ndarray) -> None:
        grads[self.keys["b_hn"]] += da[: self.H] @ ones  # b_hn enters as h_n does

    def step(self, p: dict, x: np.ndarray, h: np.ndarray) -> np.ndarray:
        """One time step for generation: x ids (B,) or (B, D), h (B, H) -> the new h.

        In place in two fresh arrays (sampling's hot path: one (H, 3H) product and a dozen
        small calls a character)."""
        H = self.H
        a = self._input_row(p, x)  # (B, 3H), a new array
        ah = h @ p[self.key_h]
        rz, n, hn = a[:, : 2 * H], a[:, 2 * H :], ah[:, 2 * H :]
        rz += ah[:, : 2 * H]
        sigmoid(rz, rz)
        hn += p[self.keys["b_hn"]]
        hn *= rz[:, :H]  # r (h W_hn + b_hn)
        n += hn
        np.tanh(n, out=n)
        out = h - n  # h_t = n + z (h_{t-1} - n), a new contiguous state
        out *= rz[:, H:]
        out += n
        return out


CELL_CLASSES = {cls.kind: cls for cls in (Elman, LSTM, GRU)}
