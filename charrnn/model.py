"""The character-level language model: stacked recurrent layers over one-hot characters.

Dimensions: T time steps, B streams, H hidden units, V vocabulary size, L layers.
Row vectors throughout; x_t is the one-hot row e_{id_t} of length V.

    h_t^0 = cell^0(x_t, state_{t-1}^0)                cell = elman | lstm | gru (cells.py)
    h_t^l = cell^l(drop(h_t^{l-1}), state_{t-1}^l)    l = 1 .. L-1
    y_t = drop(h_t^{L-1}) W_hy + b_y
    p_t = softmax(y_t)
    loss = mean over predicted positions t of -log p_t[target_t]     (nats)

With `cell=elman`: h_t = act(x_t W_xh + h_{t-1} W_hh + b_h), act = tanh | relu | sigmoid.
`drop` is inverted dropout, training only: each unit is kept with probability 1 - P and
scaled by 1 / (1 - P); the recurrent connections and the carried state are never dropped.

Parameter names (the checkpoint's `param/<name>`); layer 0 has the plain names, layer
l > 0 the same names with the suffix `.l` (`W_hh.1`, `W_x.2`, ...). D is V for layer 0,
H above it; layer 0's `x_t W` is the row gather W[id_t] (`onehot.py` has the definition).

    elman  W_xh (D, H)    W_hh (H, H)    b_h (H,)
    lstm   W_x  (D, 4H)   W_h  (H, 4H)   b (4H,)               gates i, f, o, g
    gru    W_x  (D, 3H)   W_h  (H, 3H)   b (3H,)   b_hn (H,)   gates r, z, n
    all    W_hy (H, V)    b_y  (V,)

The gate blocks sit side by side along the last axis in the order given, H columns
each: the LSTM's forget gate is W_x[:, H:2H], W_h[:, H:2H], b[H:2H].
The state carried between chunks is, per layer, h (B, H), or (h, c) for the LSTM.
"""
from __future__ import annotations

import numpy as np

from .cells import CELL_CLASSES, Elman


class Model:
    """Parameters plus forward/backward over a (T, B) chunk of ids."""

    def __init__(self, vocab_size: int, hidden_size: int, activation: str = "tanh",
                 layers: int = 1, dtype="float32", cell: str = "elman", dropout: float = 0.0):
        self.V, self.H, self.L = vocab_size, hidden_size, layers
        self.activation, self.cell, self.dropout = activation, cell, dropout
        self.dtype = np.dtype(dtype)
        self.layers = []
        for l in range(layers):
            n_in = vocab_size if l == 0 else hidden_size
            suffix = f".{l}" if l else ""
            if cell == "elman":
                layer = Elman(n_in, hidden_size, activation, embed=(l == 0), suffix=suffix)
            else:
                layer = CELL_CLASSES[cell](n_in, hidden_size, embed=(l == 0), suffix=suffix)
            self.layers.append(layer)
        self.params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] | None = None
        self._out: dict = {}
        # The dropout masks' generator. The training loop sets it (seeded from config.seed)
        # and owns its state; a gradient check reseeds it before each forward to fix the masks.
        self.rng: np.random.Generator | None = None

    @classmethod
    def from_config(cls, config, vocab_size: int) -> "Model":
        return cls(vocab_size, config.hidden_size, config.activation, getattr(config, "layers", 1), config.dtype,
                   getattr(config, "cell", "elman"), getattr(config, "dropout", 0.0))

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
        """Per layer: h (B, H), or the pair (h, c) for an LSTM."""
        return [layer.zero_state(batch, self.dtype) for layer in self.layers]

    def grads(self) -> dict:
        """The gradient buffers, keyed like params, from the last backward()."""
        return self._grads

    # -- training ---------------------------------------------------------------------
    def forward(self, x: np.ndarray, y: np.ndarray, state: list, train: bool = False,
                advance: int | None = None) -> tuple[float, list]:
        """Mean loss over the (T, B) targets y, and the state to carry into the next chunk.

        train=True applies dropout (when the model has it), with masks drawn from self.rng.
        advance=k1 < T is TBPTT(k1, k2=T): the next window starts k1 steps later, so the
        state returned is the one after k1 steps, and only the k1 newest predictions enter
        the loss (the older T - k1 are context the gradient still flows through).
        """
        T, B = x.shape
        k1 = T if advance is None else advance
        drop = train and self.dropout > 0
        self._dropped = drop
        h = x
        new_state = []
        for i, (layer, s0) in enumerate(zip(self.layers, state)):
            if drop and i:
                h = self._drop(i - 1, h)
            h = layer.forward(self.params, h, s0)
            new_state.append(layer.final_state(k1))
        if drop:
            h = self._drop(len(self.layers) - 1, h)
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
        top = len(self.layers) - 1
        if self._dropped:
            dh *= self._out[f"mask.{top}"]
        for i in range(top, -1, -1):
            dh = self.layers[i].backward(self.params, dh, grads, need_dx=i > 0)
            if i and self._dropped:
                dh *= self._out[f"mask.{i - 1}"]
        return grads

    def _drop(self, j: int, h: np.ndarray) -> np.ndarray:
        """Inverted dropout of layer j's output h (T, B, H), into a buffer (h is kept for backward)."""
        if self.rng is None:
            self.rng = np.random.default_rng(0)
        mask, out = self._out.get(f"mask.{j}"), self._out.get(f"drop.{j}")
        if mask is None or mask.shape != h.shape or mask.dtype != h.dtype:
            mask = self._out[f"mask.{j}"] = np.empty(h.shape, h.dtype)
            out = self._out[f"drop.{j}"] = np.empty(h.shape, h.dtype)
        keep = 1.0 - self.dropout
        self.rng.random(out=mask, dtype=mask.dtype)  # u in [0, 1)
        mask += keep  # floor(u + keep) is 1 with probability keep, else 0
        np.floor(mask, out=mask)
        mask *= 1.0 / keep
        np.multiply(h, mask, out=out)
        return out

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
        for layer, s0 in zip(self.layers, state):
            s = layer.step(self.params, h, s0)
            new_state.append(s)
            h = layer.output(s)
        return h @ self.params["W_hy"] + self.params["b_y"], new_state

    def run(self, x: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """Inference over ids x (T, B): the top layer's h_1..h_T (T, B, H) and the state after.

        No loss and nothing kept for a backward pass; the returned array is a reused buffer,
        valid until the next run or forward.
        """
        h = x
        new_state = []
        for layer, s0 in zip(self.layers, state):
            h = layer.forward(self.params, h, s0)
            new_state.append(layer.final_state())
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
        G = {"elman": 1, "lstm": 4, "gru": 3}[self.cell]
        return 6 * (G * L * H * H + G * (L - 1) * H * H + H * V)


def map_state(fn, state: list) -> list:
    """Apply fn to every array of a per-layer state, keeping an LSTM layer's (h, c) a pair."""
    return [tuple(fn(a) for a in s) if isinstance(s, tuple) else fn(s) for s in state]


def softmax_cross_entropy(logits: np.ndarray, targets: np.ndarray) -> float:
    """Mean -log softmax(logits)[target] over rows; leaves softmax probabilities in logits."""
    target_logit, sums = _exp_shifted(logits, targets)
    loss = float(np.mean(np.log(sums) - target_logit))
    logits /= sums.astype(logits.dtype)[:, None]
    return loss


def softmax_nll(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """-log softmax(logits)[target] per row, float64 (N,); logits (N, V) are overwritten."""
    target_logit, sums = _exp_shifted(logits, targets)
    return np.log(sums) - target_logit


def _exp_shifted(logits: np.ndarray, targets: np.ndarray) -> tuple:
    """In place logits -> exp(logits - row max); returns the shifted target logits and the
    row sums, both float64 (the max shift keeps exp() from overflowing)."""
    rows = np.arange(logits.shape[0])
    logits -= logits.max(axis=1, keepdims=True)
    target_logit = logits[rows, targets].astype(np.float64)
    np.exp(logits, out=logits)
    return target_logit, logits.sum(axis=1, dtype=np.float64)
