"""A character-level encoder-decoder: one RNN reads the source, a second writes the target.

Dimensions: Ts source steps, Tt target steps (the target plus one marker), B pairs, H hidden
units, L layers, Vs / Vt the source / target vocabulary sizes, N the real (unpadded) target
positions of a batch.

    encoder:  s_t^l = cell_enc^l(x_t, s_{t-1}^l), s_0 = 0,   t = 1 .. n_b (source b has n_b chars)
    bridge:   decoder state_0^l = s_{n_b}^l                  each source's own last char, per layer
    decoder:  d_t^l = cell_dec^l(y_{t-1}, d_{t-1}^l),        y_0 = START, y_1.. the target chars
    output:   p_t = softmax(d_t^{L-1} W_hy + b_y)            trained to give target_t, then END
    loss = mean over the N real target positions of -log p_t[target_t]     (nats per char)

Teacher forcing: the decoder reads the true previous character, not its own guess. Pairs are
padded at the end of each row; the padding is masked out of the loss (only the N real
positions reach the output layer) and out of the bridge (each row's state is read after its
own last source char, so the padding steps after it never enter it). The decoder's
gradient with respect to its first state flows into the encoder at that same step.

Parameters: the encoder's cell parameters with the prefix `enc.` (`enc.W_x`, `enc.W_h.1`, ...),
the decoder's with `dec.`, and the output layer `dec.W_hy` (H, Vt), `dec.b_y` (Vt,). Encoder
and decoder use the same cell, H and L (the decoder starts from the encoder's state, layer by
layer). The cells are those of the language model (cells.py), driven through their per-layer
forward/backward; `need_dstate0` and the LSTM's `dcs` carry the gradient across the bridge.
"""
from __future__ import annotations

import numpy as np

from .cells import CELL_CLASSES
from .model import softmax_cross_entropy

START, END = "\x02", "\x03"  # start-of-text and end-of-text: the decoder's markers in the target vocabulary


def _stack(cell: str, n_in: int, H: int, layers: int, activation: str) -> list:
    out = []
    for l in range(layers):
        suffix = f".{l}" if l else ""
        d = n_in if l == 0 else H
        out.append(CELL_CLASSES[cell](d, H, activation=activation, embed=(l == 0), suffix=suffix))
    return out


class Batch:
    """A padded batch of id pairs, time-major; lengths say where each row's real part ends."""

    def __init__(self, src: np.ndarray, src_len: np.ndarray, dec_in: np.ndarray, dec_out: np.ndarray,
                 tgt_len: np.ndarray):
        self.src, self.src_len = src, src_len  # (Ts, B), (B,)
        self.dec_in, self.dec_out, self.tgt_len = dec_in, dec_out, tgt_len  # (Tt, B), (Tt, B), (B,)

    @property
    def size(self) -> int:
        return self.src.shape[1]

    def target_chars(self) -> int:
        """Real target positions (each target's chars and its END)."""
        return int(self.tgt_len.sum())


class Seq2Seq:
    """Encoder and decoder parameters plus forward/backward over a padded Batch."""

    task = "seq2seq"

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, hidden_size: int, layers: int = 1,
                 cell: str = "lstm", activation: str = "tanh", dtype="float32"):
        self.Vs, self.Vt, self.H, self.L = src_vocab_size, tgt_vocab_size, hidden_size, layers
        self.cell, self.activation, self.dtype = cell, activation, np.dtype(dtype)
        self.enc = _stack(cell, src_vocab_size, hidden_size, layers, activation)
        self.dec = _stack(cell, tgt_vocab_size, hidden_size, layers, activation)
        self.params: dict = {}
        self._grads: dict | None = None
        # The timings of the last forward+backward, by part, for `share of time` figures.
        self.timing = {"encoder": 0.0, "decoder": 0.0, "output": 0.0}

    @classmethod
    def from_config(cls, config, src_vocab_size: int, tgt_vocab_size: int) -> "Seq2Seq":
        return cls(src_vocab_size, tgt_vocab_size, config.hidden_size, config.layers, config.cell,
                   config.activation, config.dtype)

    # -- parameters -------------------------------------------------------------------
    def shapes(self) -> dict:
        shapes = {}
        for prefix, stack in (("enc.", self.enc), ("dec.", self.dec)):
            for layer in stack:
                shapes.update({prefix + k: s for k, s in layer.shapes().items()})
        shapes["dec.W_hy"] = (self.H, self.Vt)
        shapes["dec.b_y"] = (self.Vt,)
        return shapes

    def init(self, seed_or_rng=0) -> "Seq2Seq":
        rng = np.random.default_rng(seed_or_rng)
        params = {}
        for prefix, stack in (("enc.", self.enc), ("dec.", self.dec)):
            for layer in stack:
                params.update({prefix + k: v for k, v in layer.init(rng, self.dtype).items()})
        bound = 1.0 / np.sqrt(self.H)
        params["dec.W_hy"] = rng.uniform(-bound, bound, (self.H, self.Vt)).astype(self.dtype)
        params["dec.b_y"] = np.zeros(self.Vt, dtype=self.dtype)
        return self.set_params(params)

    def set_params(self, params: dict) -> "Seq2Seq":
        shapes = self.shapes()
        if set(params) != set(shapes):
            raise ValueError(f"parameters {sorted(params)} do not match {sorted(shapes)}")
        self.params = {k: np.ascontiguousarray(params[k], dtype=self.dtype) for k in shapes}
        self._views()
        return self

    def _views(self) -> None:
        # The cells look parameters up by their plain names: give each network a dict of
        # its own arrays under those names (the same arrays, so in-place updates show).
        self._pe = {k[4:]: v for k, v in self.params.items() if k.startswith("enc.")}
        self._pd = {k[4:]: v for k, v in self.params.items() if k.startswith("dec.")}

    def num_params(self) -> int:
        return int(sum(np.prod(s) for s in self.shapes().values()))

    def grads(self) -> dict:
        return self._grads

    # -- training ---------------------------------------------------------------------
    def forward(self, batch: Batch) -> float:
        """Mean loss per real target char of the batch (teacher forcing)."""
        import time

        t0 = time.perf_counter()
        self._batch = batch
        self._bridge = self.encode_states(batch.src, batch.src_len)
        t1 = time.perf_counter()
        h = batch.dec_in
        for layer, s0 in zip(self.dec, self._bridge):
            h = layer.forward(self._pd, h, s0)
        t2 = time.perf_counter()
        Tt, B = batch.dec_in.shape
        # Only the real positions reach the output layer: the padding costs no products here.
        self._mask = np.flatnonzero((np.arange(Tt)[:, None] < batch.tgt_len[None, :]).reshape(-1))  # (N,)
        self._top = h.reshape(Tt * B, self.H)[self._mask]  # (N, H)
        logits = self._top @ self.params["dec.W_hy"]
        logits += self.params["dec.b_y"]
        self._y = batch.dec_out.reshape(-1)[self._mask]
        loss = softmax_cross_entropy(logits, self._y)  # logits now hold p
        self._p = logits
        self.timing = {"encoder": t1 - t0, "decoder": t2 - t1, "output": time.perf_counter() - t2}
        return loss

    def encode_states(self, src: np.ndarray, src_len: np.ndarray) -> list:
        """Run the encoder over src (Ts, B); per layer, each row's state after its own last char."""
        h, out = src, []
        B = src.shape[1]
        lengths = np.unique(src_len)
        for layer in self.enc:
            h = layer.forward(self._pe, h, layer.zero_state(B, self.dtype))
            state = layer.zero_state(B, self.dtype)
            for k in lengths.tolist():  # one read per distinct length: bucketing keeps them few
                rows = np.flatnonzero(src_len == k)
                final = layer.final_state(k)
                if isinstance(state, tuple):
                    for part, f in zip(state, final):
                        part[rows] = f[rows]
                else:
                    state[rows] = final[rows]
            out.append(state)
        return out

    def backward(self) -> dict:
        """Gradients of the last forward()'s loss, keyed like params."""
        import time

        t0 = time.perf_counter()
        if self._grads is None or any(self._grads[k].dtype != v.dtype for k, v in self.params.items()):
            self._grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        grads = self._grads
        for g in grads.values():
            g.fill(0)
        ge = {k[4:]: v for k, v in grads.items() if k.startswith("enc.")}
        gd = {k[4:]: v for k, v in grads.items() if k.startswith("dec.")}
        batch, p, N = self._batch, self._p, len(self._y)
        p[np.arange(N), self._y] -= 1  # d loss / d logits = (p - onehot) / N
        p *= 1.0 / N
        np.matmul(self._top.T, p, out=grads["dec.W_hy"])
        grads["dec.b_y"] += p.sum(axis=0)
        Tt, B = batch.dec_in.shape
        dh = np.zeros((Tt * B, self.H), self.dtype)
        dh[self._mask] = p @ self.params["dec.W_hy"].T  # padded positions get no gradient
        dh = dh.reshape(Tt, B, self.H)
        t1 = time.perf_counter()
        dstate0 = [None] * self.L
        for i in range(self.L - 1, -1, -1):
            layer = self.dec[i]
            dh = layer.backward(self._pd, dh, gd, need_dx=i > 0, need_dstate0=True)
            dstate0[i] = layer.dstate0
        t2 = time.perf_counter()
        self._encoder_backward(dstate0, ge)
        t3 = time.perf_counter()
        self.timing["output"] += t1 - t0
        self.timing["decoder"] += t2 - t1
        self.timing["encoder"] += t3 - t2
        return grads

    def _encoder_backward(self, dstate0: list, ge: dict) -> None:
        """The decoder's d loss / d state_0 enters each encoder layer at each row's last char."""
        src, src_len = self._batch.src, self._batch.src_len
        Ts, B = src.shape
        rows, last = np.arange(B), src_len - 1
        dx = None
        for i in range(self.L - 1, -1, -1):
            layer, d0 = self.enc[i], dstate0[i]
            dhs = np.zeros((Ts, B, self.H), self.dtype) if dx is None else dx
            dh0, dc0 = d0 if isinstance(d0, tuple) else (d0, None)
            dhs[last, rows] += dh0
            extra = {}
            if dc0 is not None:
                dcs = np.zeros((Ts, B, self.H), self.dtype)
                dcs[last, rows] = dc0
                extra["dcs"] = dcs
            dx = layer.backward(self._pe, dhs, ge, need_dx=i > 0, **extra)

    # -- inference --------------------------------------------------------------------
    def decoder_step(self, x: np.ndarray, state: list) -> tuple:
        """One target char for each of B rows: ids (B,) -> logits (B, Vt), next state."""
        h, new_state = x, []
        for layer, s0 in zip(self.dec, state):
            s = layer.step(self._pd, h, s0)
            new_state.append(s)
            h = layer.output(s)
        return h @ self.params["dec.W_hy"] + self.params["dec.b_y"], new_state

    def loss_sums(self, batch: Batch) -> np.ndarray:
        """-log p of each row's target (and END), summed per row, float64 (B,); no backward."""
        self.forward(batch)
        nll = -np.log(np.maximum(self._p[np.arange(len(self._y)), self._y].astype(np.float64), 1e-300))
        row = self._mask % batch.size  # the column (pair) of each real position
        return np.bincount(row, weights=nll, minlength=batch.size)
