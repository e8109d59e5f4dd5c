"""The character-level language model: an Elman network over one-hot characters.

Dimensions: T time steps, B streams, H hidden units, V vocabulary size.
Row vectors throughout; x_t is the one-hot row e_{id_t} of length V.

    h_t = act(x_t W_xh + h_{t-1} W_hh + b_h)        act = tanh | relu | sigmoid
    y_t = h_t W_hy + b_y
    p_t = softmax(y_t)
    loss = mean over predicted positions t of -log p_t[target_t]     (nats)

Shapes: W_xh (V, H), W_hh (H, H), b_h (H,), W_hy (H, V), b_y (V,).
`x_t W_xh` is computed as the row gather W_xh[id_t]; `onehot.py` holds the definition.
With `layers` L > 1 the layers are stacked: layer l's input is layer l-1's h_t, and its
parameters are named with the suffix `.l` (`W_xh.1`, `W_hh.1`, `b_h.1`, ...); layer 0 keeps
the plain names above.
"""
from __future__ import annotations

import numpy as np

from .cells import Elman


class Model:
    """Parameters plus forward/backward over a (T, B) chunk of ids."""

    def __init__(self, vocab_size: int, hidden_size: int, activation: str = "tanh",
                 layers: int = 1, dtype="float32"):
        self.V, self.H, self.L = vocab_size, hidden_size, layers
        self.activation = activation
        self.dtype = np.dtype(dtype)
        self.layers = []
        for l in range(layers):
            n_in = vocab_size if l == 0 else hidden_size
            suffix = f".{l}" if l else ""
            layer = Elman(n_in, hidden_size, activation, embed=(l == 0), suffix=suffix)
            self.layers.append(layer)
        self.params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] | None = None
        self._out: dict = {}

    @classmethod
    def from_config(cls, config, vocab_size: int) -> "Model":
        return cls(vocab_size, config.hidden_size, config.activation, getattr(config, "layers", 1), config.dtype)

    # -- parameters -------------------------------------------------------------------
    def shapes(self) -> dict:
        shapes = {}
        for layer in self.layers:
            shapes.update(layer.shapes())
        shapes["W_hy"] = (self.H, self.V)
        shapes["b_y"] = (self.V,)
        return shapes

    def init(self, seed_or_rng=0) -> "Model":
        rng = np.random.default_rng(seed_or_rng)
        params = {}
        for layer in self.layers:
            params.update(layer.init(rng, self.dtype))
        bound = 1.0 / np.sqrt(self.H)  # nn.Linear's scale; output biases start at zero
        params["W_hy"] = rng.uniform(-bound, bound, (self.H, self.V)).astype(self.dtype)
        params["b_y"] = np.zeros(self.V, dtype=self.dtype)
        self.params = params
        return self

    def set_params(self, params: dict) -> "Model":
        shapes = self.shapes()
        if set(params) != set(shapes):
            raise ValueError(f"parameters {sorted(params)} do not match {sorted(shapes)}")
        self.params = {k: np.ascontiguousarray(params[k], dtype=self.dtype) for k in shapes}
        return self

    def num_params(self) -> int:
        return int(sum(np.prod(s) for s in self.shapes().values()))

    def zero_state(self, batch: int) -> list:
        return [np.zeros((batch, self.H), dtype=self.dtype) for _ in self.layers]

    def grads(self) -> dict:
        """The gradient buffers, keyed like params, from the last backward()."""
        return self._grads

    # -- training ---------------------------------------------------------------------
    def forward(self, x: np.ndarray, y: np.ndarray, state: list, advance: int | None = None) -> tuple[float, list]:
        """Mean loss over the (T, B) targets y, and the state to carry into the next chunk.

        advance=k1 < T is TBPTT(k1, k2=T): the next window starts k1 steps later, so the
        state returned is h after k1 steps, and only the k1 newest predictions enter the
        loss (the older T - k1 are context the gradient still flows through).
        """
        T, B = x.shape
        k1 = T if advance is None else advance
        h = x
        new_state = []
        for layer, h0 in zip(self.layers, state):
            h = layer.forward(self.params, h, h0)
            new_state.append(h[k1 - 1].copy())
        self._top, self._k1 = h, k1
        logits = self._logits_buffer(k1 * B)
        np.matmul(h[T - k1 :].reshape(k1 * B, self.H), self.params["W_hy"], out=logits)  # (k1*B, V)
        logits += self.params["b_y"]
        self._y = y[T - k1 :].reshape(-1)
        loss = softmax_cross_entropy(logits, self._y)  # logits now hold p = softmax(y)
        return loss, new_state

    def backward(self) -> dict:
        """Gradients of the last forward()'s mean loss, keyed like params."""
        if self._grads is None or any(self._grads[k].dtype != v.dtype for k, v in self.params.items()):
            self._grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        grads = self._grads
        for g in grads.values():
            g.fill(0)
        p = self._out["logits"][: len(self._y)]
        N = len(self._y)
        p[np.arange(N), self._y] -= 1  # d loss / d y = (p - onehot(target)) / N
        p *= 1.0 / N
        T, B, H = self._top.shape
        skip = (T - self._k1) * B  # rows of the context steps, outside the loss
        top = self._top.reshape(T * B, H)[skip:]
        np.matmul(top.T, p, out=grads["W_hy"])
        grads["b_y"] += p.sum(axis=0)
        dh = self._out.get("dh")
        if dh is None or dh.shape != (T * B, H) or dh.dtype != self.dtype:
            dh = self._out["dh"] = np.empty((T * B, H), self.dtype)
        dh[:skip] = 0
        np.matmul(p, self.params["W_hy"].T, out=dh[skip:])
        dh = dh.reshape(T, B, H)
        for i in range(len(self.layers) - 1, -1, -1):
            dh = self.layers[i].backward(self.params, dh, grads, need_dx=i > 0)
        return grads

    def _logits_buffer(self, n: int) -> np.ndarray:
        buf = self._out.get("logits")
        if buf is None or buf.shape[0] < n or buf.dtype != self.dtype:
            buf = self._out["logits"] = np.empty((n, self.V), self.dtype)
        return buf[:n]

    # -- inference --------------------------------------------------------------------
    def loss_sum(self, ids: np.ndarray, state: list, chunk: int | None = None) -> tuple[float, int, list]:
        """Summed loss of predicting ids[1:] from ids[:-1] in B parallel rows.

        ids: (B, N). Returns (sum of -log p in nats, number of predictions, final state).
        """
        B, N = ids.shape
        # Chunks of about 2^20 activations: few Python calls, buffers of a few MB.
        chunk = chunk or max(16, min(1024, (1 << 20) // (B * self.H)))
        total, count = 0.0, 0
        for start in range(0, N - 1, chunk):
            stop = min(start + chunk, N - 1)
            x = np.ascontiguousarray(ids[:, start:stop].T, dtype=np.intp)
            y = np.ascontiguousarray(ids[:, start + 1 : stop + 1].T, dtype=np.intp)
            loss, state = self.forward(x, y, state)
            total += loss * y.size
            count += y.size
        return total, count, state

    def step(self, x: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """One character for each of B streams: ids (B,) -> logits (B, V), next state."""
        h = x
        new_state = []
        for layer, h0 in zip(self.layers, state):
            h = layer.step(self.params, h, h0, np.empty_like(h0))
            new_state.append(h)
        return h @ self.params["W_hy"] + self.params["b_y"], new_state

    def run(self, x: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """Inference over ids x (T, B): the top layer's h_1..h_T (T, B, H) and the state after.

        No loss and nothing kept for a backward pass; the returned array is a reused buffer,
        valid until the next run or forward.
        """
        h = x
        new_state = []
        for layer, h0 in zip(self.layers, state):
            h = layer.forward(self.params, h, h0)
            new_state.append(h[-1].copy())
        return h, new_state

    def position_losses(self, x: np.ndarray, y: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """-log p(y_t | x_1..x_t) for every position: (T, B) float64 nats, and the state after.

        What `forward` averages, kept per position (for per-line scores); the training path
        does not go through here.
        """
        T, B = x.shape
        h, new_state = self.run(x, state)
        logits = self._logits_buffer(T * B)
        np.matmul(h.reshape(T * B, self.H), self.params["W_hy"], out=logits)  # (T*B, V)
        logits += self.params["b_y"]
        return softmax_nll(logits, y.reshape(-1)).reshape(T, B), new_state

    def flops_per_char(self) -> int:
        """Training FLOPs per character: forward and the two backward products, one-hot as a gather."""
        H, V, L = self.H, self.V, self.L
        return 6 * (L * H * H + (L - 1) * H * H + H * V)


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean -log softmax(logits)[target] over rows; leaves softmax probabilities in logits."""
    N = logits.shape[0]
    rows = np.arange(N)
    logits -= logits.max(axis=1, keepdims=True)
    target_logit = logits[rows, targets].astype(np.float64)
    np.exp(logits, out=logits)
    sums = logits.sum(axis=1, dtype=np.float64)
    loss = float(np.mean(np.log(sums) - target_logit))
    logits /= sums.astype(logits.dtype)[:, None]
    return loss


def softmax_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row, float64 (N,); logits (N, V) are overwritten."""
    rows = np.arange(logits.shape[0])
    logits -= logits.max(axis=1, keepdims=True)
    target_logit = logits[rows, targets].astype(np.float64)
    np.exp(logits, out=logits)
    return np.log(logits.sum(axis=1, dtype=np.float64)) - target_logit
