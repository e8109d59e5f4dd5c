"""Gradient flow across time: how far back the gradient of one step's loss reaches.

Dimensions: T time steps, B windows (run side by side), H hidden units, V vocabulary, K steps back.
Each window is T = W + K + 1 characters; the first W only warm the state up from zero,
so that the states the gradient passes through are the ones the model meets in a text.
For the loss at the window's last step, L_T = -log p_T[target_T], and the top layer:

    g_T     = d L_T / d h_T     = (p_T - onehot(target_T)) W_hy^T
    g_{t-1} = d L_T / d h_{t-1} = (g_t * act'(a_t)) W_hh^T          (Elman: h_t = act(a_t))

`gradient_flow` reports, for k = 1..K, the mean over the windows of ||g_{T-k}||_2. Each step
back multiplies by diag(act'(a_t)) W_hh^T: act' is at most 1/4 for sigmoid, at most 1 for
tanh, and 0 or 1 for ReLU, which is why the three activations lose the gradient at
different rates. GRU and LSTM layers have their own recursions (reference.py; for an LSTM
the gradient also travels through the cell state c, and ||d L_T / d h_{T-k}|| is reported).

The layers below the top run their own forward pass, as in training. The top layer is run
again in float64 by its plain recurrence (reference.py), so tiny norms are reported rather
than rounded to 0, with its backward recursion taken step by step and the norm at every
step; the training hot loop carries no extra work for it.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

import numpy as np

from . import reference
from .errors import CharRNNError

WARMUP = 32  # characters run before each window, from a zero state
ACTIVATIONS = ("tanh", "relu", "sigmoid")


@dataclass
class Flow:
    """Mean ||d L_T / d h_{T-k}|| for k = 1..K, over `windows` windows of a text."""

    activation: str  # the Elman activation, or the cell's name (gru, lstm)
    windows: int
    mean_norm: list  # index k-1 holds step k
    label: str = ""
    cell: str = "elman"
    extra: dict = field(default_factory=dict)  # e.g. training figures of the model measured

    @property
    def steps(self) -> int:
        return len(self.mean_norm)

    @property
    def factor_per_step(self) -> float:
        """Geometric mean of the ratio between neighbouring steps (below 1: vanishing)."""
        first, last = self.mean_norm[0], self.mean_norm[-1]
        if self.steps < 2 or first <= 0 or last <= 0 or not math.isfinite(last):
            return float("nan") if last != 0 else 0.0
        return (last / first) ** (1.0 / (self.steps - 1))

    def to_dict(self) -> dict:
        """Plain data for JSON; a norm that overflowed (or a factor that is undefined) is null."""
        d = asdict(self)
        d["mean_norm"] = [_finite(v) for v in self.mean_norm]
        d.update(steps=self.steps, k=list(range(1, self.steps + 1)), factor_per_step=_finite(self.factor_per_step))
        return d


def _finite(v: float) -> Optional[float]:
    return float(v) if math.isfinite(v) else None


def gradient_flow(model, ids: np.ndarray, steps: int = 50, windows: int = 256, warmup: int = WARMUP) -> Flow:
    """Measure the gradient of the last step's loss k = 1..steps steps back, over evenly spaced windows of ids."""
    top = model.layers[-1]
    recurrence = reference.RECURRENCES.get(top.kind)
    if recurrence is None:
        raise CharRNNError(f"gradflow measures Elman, GRU and LSTM layers; this model has a {top.kind} layer")
    T = warmup + steps + 1
    n_starts = len(ids) - T  # the target after the last input must exist
    if n_starts < 1:
        raise CharRNNError(f"the text has {len(ids)} characters; --steps {steps} needs at least {T + 1}")
    B = min(windows, n_starts)
    starts = np.unique(np.linspace(0, n_starts - 1, B).astype(np.intp))
    B = len(starts)
    x = np.asarray(ids, dtype=np.intp)[starts[None, :] + np.arange(T)[:, None]]  # (T, B)
    target = np.asarray(ids, dtype=np.intp)[starts + T]  # (B,)

    p = model.params
    h = x
    for layer, s0 in zip(model.layers[:-1], model.zero_state(B)):  # the layers below, as in training
        h = layer.forward(p, h, s0)  # (T, B, H)
    with np.errstate(over="ignore", invalid="ignore"):
        hs, back = recurrence(top, reference.params_of(top, p), h)
        W_hy = p["W_hy"].astype(np.float64)
        logits = hs[T] @ W_hy + p["b_y"]  # (B, V)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        probs[np.arange(B), target] -= 1
        g = probs @ W_hy.T  # (B, H): d L_T / d h_T
        norms = np.empty((steps, B))
        for k in range(1, steps + 1):
            g = back(T - k, g)  # d L_T / d h_{T-k}
            norms[k - 1] = np.sqrt(np.einsum("bh,bh->b", g, g))
    return Flow(top.activation if top.kind == "elman" else top.kind, B, norms.mean(axis=1).tolist(), cell=top.kind)


def flow_of(source, text: str, steps: int = 50, windows: int = 256) -> Flow:
    """gradient_flow on a text of a checkpoint (or its path), a (model, vocab) pair or a training Result."""
    from .checkpoint import model_and_vocab

    model, vocab = model_and_vocab(source, "gradflow")
    flow = gradient_flow(model, vocab.encode(text), steps, windows)
    flow.label = flow.activation  # tanh, relu or sigmoid for Elman; gru or lstm
    return flow


def compare_activations(text: str, seconds: float = 5.0, hidden_size: int = 64, steps: int = 50,
                        windows: int = 256, seed: int = 0, max_steps: Optional[int] = None,
                        progress: Optional[Callable[[str], None]] = None) -> list:
    """Train a small Elman model per activation on `text`, and measure each one's gradient flow.

    Returns Flows in pairs per activation: at initialisation, then after `seconds` of
    training (or `max_steps` updates). The models share everything but the activation.
    """
    from .config import Config
    from .data import min_train_length
    from .model import Model
    from .training import Run
    from .vocab import Vocab

    B, T = 32, 64
    if len(text) < min_train_length(B, T):
        raise CharRNNError(f"--compare-activations trains on the text in {B} streams of {T} characters: "
                           f"it needs at least {min_train_length(B, T)} characters, got {len(text)}")
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    flows = []
    for act in ACTIVATIONS:
        config = Config(hidden_size=hidden_size, activation=act, batch_size=B, seq_len=T, lr=3e-3,
                        max_time=None if max_steps else seconds, max_steps=max_steps,
                        eval_every=10**9, save_every=10**9, seed=seed)
        init = Model.from_config(config, len(vocab)).init(seed)  # the model train() starts from
        flow0 = gradient_flow(init, ids, steps, windows)
        flow0.label = f"{act}, initialised"
        if progress:
            progress(f"training {act} ({hidden_size} hidden units) for {seconds:g} s" if not max_steps
                     else f"training {act} ({hidden_size} hidden units) for {max_steps} updates")
        result = Run(config, text=text, out=None).train()  # in memory: nothing written
        flow1 = gradient_flow(result.model, ids, steps, windows)
        flow1.label = f"{act}, trained"
        flow1.extra = {"updates": result.steps, "seconds": round(result.seconds, 2),
                       "train_loss": result.train_loss, "val_loss": result.val_loss}
        flows += [flow0, flow1]
    return flows


INIT_COLORS = {"uniform": "tab:blue", "normal": "tab:red", "orthogonal": "tab:green"}
INITS = (("uniform", 1.0, "uniform (default)"), ("normal", 1.0, "normal N(0,1)"), ("orthogonal", 1.0, "orthogonal"))


def compare_inits(text: str, hidden_size: int = 64, steps: int = 50, windows: int = 256, seed: int = 0,
                  activation: str = "tanh") -> list:
    """The gradient flow of three untrained Elman models on `text` that differ only in their
    initial weights: the default U(-1/sqrt(H), 1/sqrt(H)), N(0, 1) and orthogonal.

    N(0, 1) makes W_hh's spectral radius about sqrt(H): each step back multiplies the
    gradient by far more than 1 wherever tanh is not saturated, and it explodes. The
    default's radius is about 1/sqrt(3) (the gradient decays); an orthogonal W_hh has
    every singular value 1 (it decays only by tanh's slope).
    """
    from .config import Config
    from .initialization import initial_model
    from .vocab import Vocab

    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    flows = []
    for scheme, scale, label in INITS:
        config = Config(hidden_size=hidden_size, activation=activation, init=scheme, init_scale=scale, seed=seed,
                        dtype="float64")  # float64: N(0, 1)'s gradients overflow float32 a few dozen steps back
        model = initial_model(config, len(vocab))
        with np.errstate(over="ignore", invalid="ignore"):
            flow = gradient_flow(model, ids, steps, windows)
        flow.label = label
        radius = float(np.max(np.abs(np.linalg.eigvals(model.params["W_hh"]))))
        flow.extra = {"init": scheme, "init_scale": scale, "spectral_radius": round(radius, 4)}
        flows.append(flow)
    return flows


def format_table(flows: list) -> str:
    """k and one column of mean norms per flow, then each flow's factor per step."""
    labels = [f.label or f.activation for f in flows]
    w = max(11, *(len(s) for s in labels)) + 2
    lines = ["mean ||d loss_T / d h_(T-k)|| over windows",
             f"{'k':>8}" + "".join(f"{s:>{w}}" for s in labels)]
    for k in range(flows[0].steps):
        lines.append(f"{k + 1:>8}" + "".join(f"{f.mean_norm[k]:>{w}.3e}" for f in flows))
    lines.append(f"{'per step':>8}" + "".join(f"{f.factor_per_step:>{w}.3f}" for f in flows))
    for f in flows:
        e = f.extra
        if "spectral_radius" in e:
            lines.append(f"{f.label}: spectral radius of W_hh {e['spectral_radius']:.3f}")
        if e.get("updates") is not None:
            val = f", val loss {e['val_loss']:.3f}" if e.get("val_loss") is not None else ""
            lines.append(f"{f.label}: {e['updates']} updates in {e['seconds']:g} s, "
                         f"train loss {e['train_loss']:.3f}{val}")
    return "\n".join(lines)


def require_matplotlib():
    """pyplot on a file-only backend, or the one-line error naming the extra to install."""
    from .plotting import pyplot

    return pyplot()


def plot(flows: list, path: str, title: str = "") -> None:
    """Draw the flows' mean norms against k on a log scale into path (PNG, SVG or PDF by extension)."""
    plt = require_matplotlib()
    colors = {"tanh": "tab:blue", "relu": "tab:orange", "sigmoid": "tab:green"}
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
    for f in flows:
        k = np.arange(1, f.steps + 1)
        y = np.asarray(f.mean_norm, dtype=float)
        y[~(y > 0)] = np.nan  # a zero or non-finite norm has no place on a log axis
        dashed = "initialised" in f.label
        color = INIT_COLORS.get(f.extra.get("init"), colors.get(f.activation))
        ax.semilogy(k, y, "--" if dashed else "-", color=color, label=f.label or f.activation,
                    linewidth=1.2 if dashed else 2.0)
    ax.set_xlabel("k (steps back in time)")
    ax.set_ylabel("mean ||d loss_T / d h_(T-k)||")
    ax.set_title(title or "gradient flow across time", fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from .plotting import save_figure

    save_figure(plt, fig, path)
