"""Each cell's recurrence written out plainly, in float64, one time step at a time.

The cells in cells.py are written for speed (buffers reused, gates in one product, work
split across threads); these are written to be read and trusted. gradflow measures with
them, and the tests check the cells against them. RECURRENCES[layer.kind] is a layer's.

Each takes the layer, its parameters by their plain names (W_xh or W_x, ...) in float64,
and its input x: ids (T, B) for a first layer (`layer.embed`: the one-hot product is a
row gather), else (T, B, D) vectors. It runs from a zero state and returns (hs, back):
hs (T + 1, B, H) holds h_0 = 0, h_1, ..., h_T, and back(t, g) takes g = d L / d h_{t+1}
(t counting from 0) and returns d L / d h_t through step t alone: the layer's backward
recursion with nothing arriving from the outputs in between. back must be called for
t = T-1, T-2, ... in turn (the LSTM carries d L / d c along).
"""
from __future__ import annotations

import numpy as np


def sigmoid(a: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(0.5 * a))  # = 1 / (1 + e^-a), without overflow for large -a


ACTIVATIONS = {  # f, and f' written in terms of h = f(a)
    "tanh": (np.tanh, lambda h: 1 - h * h),
    "relu": (lambda a: np.maximum(a, 0), lambda h: (h > 0).astype(h.dtype)),
    "sigmoid": (sigmoid, lambda h: h * (1 - h)),
}


def params_of(layer, params: dict) -> dict:
    """The layer's parameters from a model's dict, by their plain names, in float64."""
    return {name: params[key].astype(np.float64) for name, key in layer.keys.items()}


def _project(layer, W: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """x_t W + b for every step: (T, B, G*H)."""
    return (W[x] if layer.embed else x.astype(np.float64) @ W) + b


def elman(layer, p: dict, x: np.ndarray):
    """h_t = f(x_t W_xh + h_{t-1} W_hh + b_h);  d L / d h_{t-1} = (g_t * f'(a_t)) W_hh^T."""
    f, df = ACTIVATIONS[layer.activation]
    xw = _project(layer, p["W_xh"], p["b_h"], x)
    T, B, H = xw.shape
    hs = np.zeros((T + 1, B, H))
    for t in range(T):
        hs[t + 1] = f(hs[t] @ p["W_hh"] + xw[t])
    W_hhT = p["W_hh"].T

    def back(t, g):
        return (g * df(hs[t + 1])) @ W_hhT

    return hs, back


def gru(layer, p: dict, x: np.ndarray):
    """Gates r, z, n:  h_t = (1 - z) n + z h_{t-1},  n = tanh(x_n + r (h_{t-1} W_hn + b_hn))."""
    xw = _project(layer, p["W_x"], p["b"], x)
    T, B, G = xw.shape
    H = G // 3
    W_h, b_hn = p["W_h"], p["b_hn"]
    hs, cache = np.zeros((T + 1, B, H)), []
    for t in range(T):
        ah = hs[t] @ W_h  # (B, 3H)
        ah[:, 2 * H :] += b_hn
        r = sigmoid(xw[t, :, :H] + ah[:, :H])
        z = sigmoid(xw[t, :, H : 2 * H] + ah[:, H : 2 * H])
        n = np.tanh(xw[t, :, 2 * H :] + r * ah[:, 2 * H :])
        hs[t + 1] = n + z * (hs[t] - n)
        cache.append((r, z, n, ah[:, 2 * H :]))
    W_hT = W_h.T

    def back(t, g):
        r, z, n, h_n = cache[t]
        da_n = g * (1 - z) * (1 - n * n)
        da_z = g * (hs[t] - n) * z * (1 - z)
        da_r = da_n * h_n * r * (1 - r)
        return np.concatenate([da_r, da_z, da_n * r], axis=1) @ W_hT + g * z

    return hs, back


def lstm(layer, p: dict, x: np.ndarray):
    """Gates i, f, o, g:  c_t = f c_{t-1} + i g,  h_t = o tanh(c_t); the state is (h, c)."""
    xw = _project(layer, p["W_x"], p["b"], x)
    T, B, G = xw.shape
    H = G // 4
    W_h = p["W_h"]
    hs, c, cache = np.zeros((T + 1, B, H)), np.zeros((B, H)), []
    for t in range(T):
        a = xw[t] + hs[t] @ W_h  # (B, 4H)
        i, f, o = (sigmoid(a[:, j * H : (j + 1) * H]) for j in range(3))
        gg = np.tanh(a[:, 3 * H :])
        c_prev, c = c, f * c + i * gg
        tc = np.tanh(c)
        hs[t + 1] = o * tc
        cache.append((i, f, o, gg, c_prev, tc))
    W_hT = W_h.T
    dc = [np.zeros((B, H))]  # d L / d c_t arriving from later steps

    def back(t, g):
        i, f, o, gg, c_prev, tc = cache[t]
        dct = dc[0] + g * o * (1 - tc * tc)
        da = np.concatenate([dct * gg * i * (1 - i), dct * c_prev * f * (1 - f),
                             g * tc * o * (1 - o), dct * i * (1 - gg * gg)], axis=1)
        dc[0] = dct * f
        return da @ W_hT

    return hs, back


RECURRENCES = {"elman": elman, "gru": gru, "lstm": lstm}
