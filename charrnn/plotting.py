"""Training curves from metrics.jsonl: loss (train and validation) and gradient norm by step.

matplotlib is an optional extra (`pip install 'charrnn[plot]'`), imported only here.
"""
from __future__ import annotations

import os
from typing import Optional

from .errors import CharRNNError
from .metrics import FILENAME, read

INSTALL_HINT = "plotting needs matplotlib: pip install 'charrnn[plot]'"


def plot(source: str = "checkpoints", output: Optional[str] = None, title: Optional[str] = None) -> str:
    """Draw source (a checkpoint directory or a metrics.jsonl) to a PNG; returns its path.

    The default output is loss.png next to the metrics file.
    """
    path = os.path.join(source, FILENAME) if os.path.isdir(source) else source
    rows = read(path)
    steps = [r["step"] for r in rows if r.get("train_loss") is not None]
    if not steps:
        raise CharRNNError(f"{path} has no training rows to plot")
    output = output or os.path.join(os.path.dirname(os.path.abspath(path)), "loss.png")
    plt = pyplot()

    train = [r["train_loss"] for r in rows if r.get("train_loss") is not None]
    val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    norms = [(r["step"], r["grad_norm"]) for r in rows if r.get("grad_norm") is not None]
    fig, (ax_loss, ax_norm) = plt.subplots(2, 1, figsize=(7, 5), sharex=True,
                                           gridspec_kw={"height_ratios": [3, 1.4]}, dpi=90)
    ax_loss.plot(steps, train, color="#4c72b0", linewidth=1, label="train")
    if val:
        ax_loss.plot(*zip(*val), color="#dd8452", marker="o", markersize=3, linewidth=1.5, label="validation")
    ax_loss.set_ylabel("loss (nats/char)")
    ax_loss.legend(frameon=False)
    ax_loss.grid(alpha=0.3)
    if title:
        ax_loss.set_title(title)
    if norms:
        ax_norm.plot(*zip(*norms), color="#55a868", linewidth=1)
        ax_norm.set_yscale("log")
        from matplotlib import ticker

        ax_norm.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        ax_norm.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax_norm.yaxis.set_minor_formatter(ticker.NullFormatter())
    ax_norm.set_ylabel("gradient norm")
    ax_norm.set_xlabel("step")
    ax_norm.grid(alpha=0.3)
    fig.tight_layout()
    save_figure(plt, fig, output)
    return output


def save_figure(plt, fig, path: str) -> None:
    """Write fig to path (making its directory), close it; failures are one-line CharRNNErrors."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path)
    except OSError as exc:
        raise CharRNNError(f"cannot write {path}: {exc.strerror or exc}") from None
    except ValueError as exc:  # an extension matplotlib has no writer for
        raise CharRNNError(f"cannot write {path}: {exc}") from None
    finally:
        plt.close(fig)


def pyplot():
    """matplotlib.pyplot on a file-only backend, or the one-line error naming the extra to install."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed, none opened
        import matplotlib.pyplot as plt
    except ImportError:
        raise CharRNNError(INSTALL_HINT) from None
    return plt
