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
H above it; layer 0's `x_t W` is the row gather W[id_t] (`Cell._project` in cells.py).

    elman  W_xh (D, H)    W_hh (H, H)    b_h (H,)
    lstm   W_x  (D, 4H)   W_h  (H, 4H)   b (4H,)               gates i, f, o, g
    gru    W_x  (D, 3H)   W_h  (H, 3H)   b (3H,)   b_hn (H,)   gates r, z, n
    all    W_hy (H, V)    b_y  (V,)

The gate blocks sit side by side along the last axis in the order given, H columns
each: the LSTM's forget gate is W_x[:, H:2H], W_h[:, H:2H], b[H:2H].
The state carried between chunks is, per layer, h (B, H), or (h, c) for the LSTM.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .cells import CELL_CLASSES, Cell, Workspace


@dataclass
class ForwardPass:
    """What backward() needs from the last forward() (the arrays are reused buffers).

    k1: the predicted steps (the last k1 of T); targets: their ids, (k1*B,), step-major;
    probs: softmax probabilities, feature-major (V, k1*B); top: the output layer's input,
    (H, k1*B); masks: per layer whose output was dropped, its mask (T, H, B), else None.
    """

    T: int
    k1: int
    targets: np.ndarray
    probs: np.ndarray
    top: np.ndarray
    masks: list = field(default_factory=list)
    layers: list = field(default_factory=list)  # the layers that ran it (Model.train_layers or .layers)


class Model:
    """Parameters plus forward/backward over a (T, B) chunk of ids."""

    def __init__(self, vocab_size: int, hidden_size: int, activation: str = "tanh",
                 layers: int = 1, dtype="float32", cell: str = "elman", dropout: float = 0.0):
        self.V, self.H, self.L = vocab_size, hidden_size, layers
        self.activation, self.cell, self.dropout = activation, cell, dropout
        self.dtype = np.dtype(dtype)
        self.kernels = "numpy"
        self.layers = self._make_layers(CELL_CLASSES)
        self.train_layers = self.layers  # what forward(train=True) runs: see use_kernels()
        self._matmul = Cell._matmul  # training's output-layer products: see use_kernels()
        self.thread_setter = None  # what sets training's threads (threads.tuner), None: BLAS's
        self.params: dict[str, np.ndarray] = {}
        self._grads: dict[str, np.ndarray] | None = None
        self.ws = Workspace()
        self.last: ForwardPass | None = None

    @classmethod
    def from_config(cls, config, vocab_size: int) -> "Model":
        return cls(vocab_size, config.hidden_size, config.activation, getattr(config, "layers", 1), config.dtype,
                   getattr(config, "cell", "elman"), getattr(config, "dropout", 0.0))

    def _make_layers(self, classes: dict) -> list:
        cls, V, H = classes[self.cell], self.V, self.H
        return [cls(V if l == 0 else H, H, activation=self.activation, embed=(l == 0), suffix=f".{l}" if l else "")
                for l in range(self.L)]

    def use_kernels(self, kernels: str) -> "Model":
        """Compute training's gate maths (forward with train=True, and its backward) with "numpy"
        (cells.py) or "numba" (compiled loops, fused.py; the optional extra `fast`).

        Inference and validation keep numpy's layers either way: the two agree only within
        float32 rounding, and a validation loss recorded in a checkpoint should be the one
        `charrnn eval` computes from it, to the bit."""
        if kernels not in ("numpy", "numba"):
            raise ValueError(f"kernels: numpy or numba, got {kernels!r}")
        if kernels != self.kernels:
            from . import fused

            if kernels == "numba":
                fused.warm(self.cell, self.activation, self.dtype)
            self.train_layers = self.layers if kernels == "numpy" else self._make_layers(fused.cell_classes())
            self._matmul = Cell._matmul if kernels == "numpy" else fused.matmul
            self.thread_setter = None if kernels == "numpy" else fused.use_threads
            self.kernels = kernels
        return self

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
                advance: int | None = None, rng: np.random.Generator | None = None) -> tuple[float, list]:
        """Mean loss over the (T, B) targets y, and the state to carry into the next chunk.

        train=True applies dropout (when the model has it), with masks drawn from rng, which
        the caller owns (the training loop seeds it and saves its state with a checkpoint).
        advance=k1 < T is TBPTT(k1, k2=T): the next window starts k1 steps later, so the
        state returned is the one after k1 steps, and only the k1 newest predictions enter
        the loss (the older T - k1 are context the gradient still flows through).
        """
        T, B = x.shape
        k1 = T if advance is None else advance
        drop = train and self.dropout > 0
        if drop and rng is None:
            raise ValueError("dropout needs its generator: forward(..., train=True, rng=...)")
        h, masks, new_state = x, [], []
        layers = self.train_layers if train else self.layers
        for i, (layer, s0) in enumerate(zip(layers, state)):
            h = layer.forward(self.params, h, s0, feature_major=True)  # (T, H, B)
            new_state.append(layer.final_state(k1))
            masks.append(self._drop(i, h, rng) if drop else None)
            if drop:
                h = self.ws.get(f"dropped.{i}", h.shape, h.dtype)
                np.multiply(layer.trace.h[1:], masks[i], out=h)
        N = k1 * B
        if drop:
            top = self.ws.get("topP", (self.H, k1, B), self.dtype)
            np.copyto(top, h[T - k1 :].transpose(1, 0, 2))
            top = top.reshape(self.H, N)
        else:
            top = layers[-1].trace.hP[:, T - k1 + 1 :].reshape(self.H, N)  # h_{T-k1+1}..h_T
        probs = self.ws.get("probs", (self.V, N), self.dtype)  # logits first, then softmax in place
        (self._matmul if train else np.matmul)(self.params["W_hy"].T, top, probs)
        probs += self.params["b_y"][:, None]
        targets = y[T - k1 :].reshape(-1)
        loss = softmax_cross_entropy(probs, targets, axis=0)
        self.last = ForwardPass(T, k1, targets, probs, top, masks, layers)
        return loss, new_state

    def backward(self) -> dict:
        """Gradients of the last forward()'s mean loss, keyed like params."""
        if self._grads is None or any(self._grads[k].dtype != v.dtype for k, v in self.params.items()):
            self._grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        grads = self._grads
        for g in grads.values():
            g.fill(0)
        last = self.last
        d, N = last.probs, len(last.targets)
        d[last.targets, np.arange(N)] -= 1  # d loss / d y = (p - onehot(target)) / N
        d *= 1.0 / N
        self._matmul(last.top, d.T, grads["W_hy"])
        grads["b_y"] += d.sum(axis=1)
        T, k1, H = last.T, last.k1, self.H
        B = N // k1
        dh = self.ws.get("dh", (T, H, B), self.dtype)
        dh[: T - k1] = 0  # the context steps, outside the loss
        # d loss / d top = W_hy d, one (H, V) @ (V, B) product per step straight into the layers'
        # (T, H, B) layout: faster than one (H, V) @ (V, k1*B) product and a copy (docs/performance.md).
        self._matmul(self.params["W_hy"], d.reshape(self.V, k1, B).transpose(1, 0, 2), dh[T - k1 :])
        for i in range(len(last.layers) - 1, -1, -1):
            if last.masks[i] is not None:
                dh *= last.masks[i]
            dh = last.layers[i].backward(self.params, dh, grads, need_dx=i > 0, feature_major=True)
        return grads

    def _drop(self, j: int, h: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Inverted dropout's mask for layer j's output h (T, H, B): 0, or 1 / (1 - P).

        Drawn in (T, B, H) order, so that a seed gives the masks it gave before the layers
        went feature-major."""
        T, H, B = h.shape
        u = self.ws.get(f"uniform.{j}", (T, B, H), h.dtype)
        mask = self.ws.get(f"mask.{j}", (T, H, B), h.dtype)
        keep = 1.0 - self.dropout
        rng.random(out=u, dtype=u.dtype)  # u in [0, 1)
        u += keep  # floor(u + keep) is 1 with probability keep, else 0
        np.floor(u, out=u)
        u *= 1.0 / keep
        np.copyto(mask, u.transpose(0, 2, 1))
        return mask

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

        No loss and nothing kept for a backward pass; the returned array is a view of a
        reused buffer, valid until the next run or forward.
        """
        h, new_state = self._run(x, state)
        return h.transpose(0, 2, 1), new_state

    def _run(self, x: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        h, new_state = x, []
        for layer, s0 in zip(self.layers, state):
            h = layer.forward(self.params, h, s0, feature_major=True)  # (T, H, B)
            new_state.append(layer.final_state())
        return h, new_state

    def position_losses(self, x: np.ndarray, y: np.ndarray, state: list) -> tuple[np.ndarray, list]:
        """-log p(y_t | x_1..x_t) for every position: (T, B) float64 nats, and the state after.

        What `forward` averages, kept per position (for per-line scores); the training path
        does not go through here.
        """
        T, B = x.shape
        _, new_state = self._run(x, state)
        top = self.layers[-1].trace.hP[:, 1:].reshape(self.H, T * B)
        scores = self.ws.get("probs", (self.V, T * B), self.dtype)
        np.matmul(self.params["W_hy"].T, top, out=scores)  # (V, T*B)
        scores += self.params["b_y"][:, None]
        return softmax_nll(scores, y.reshape(-1), axis=0).reshape(T, B), new_state

    def flops_per_char(self) -> int:
        """Training FLOPs per character: forward and the two backward products, one-hot as a gather."""
        return sum(layer.flops_per_char() for layer in self.layers) + 6 * self.H * self.V


def map_state(fn, state: list) -> list:
    """Apply fn to every array of a per-layer state, keeping an LSTM layer's (h, c) a pair."""
    return [tuple(fn(a) for a in s) if isinstance(s, tuple) else fn(s) for s in state]


def softmax_cross_entropy(scores: np.ndarray, targets: np.ndarray, axis: int = 1) -> float:
    """Mean -log softmax(scores)[target] over the rows of scores (N, V), or its columns with
    axis=0 (V, N); leaves the softmax probabilities in scores."""
    target_score, sums = _exp_shifted(scores, targets, axis)
    loss = float(np.mean(np.log(sums) - target_score))
    scores /= np.expand_dims(sums.astype(scores.dtype), axis)
    return loss


def softmax_nll(scores: np.ndarray, targets: np.ndarray, axis: int = 1) -> np.ndarray:
    """-log softmax(scores)[target] per row of scores (N, V), or per column with axis=0,
    float64 (N,); scores are overwritten."""
    target_score, sums = _exp_shifted(scores, targets, axis)
    return np.log(sums) - target_score


def _exp_shifted(scores: np.ndarray, targets: np.ndarray, axis: int) -> tuple:
    """In place scores -> exp(scores - max along axis); returns the shifted target scores and
    the sums along axis, both float64 (the max shift keeps exp() from overflowing)."""
    scores -= scores.max(axis=axis, keepdims=True)
    others = np.arange(scores.shape[1 - axis])
    picked = scores[targets, others] if axis == 0 else scores[others, targets]
    np.exp(scores, out=scores)
    return picked.astype(np.float64), scores.sum(axis=axis, dtype=np.float64)
