"""The textbook example of a character-level language model: an Elman network learns
"hello", one character at a time.

Vocabulary h, e, l, o (V = 4); the inputs h, e, l, l are one-hot rows, the targets the next
characters e, l, l, o. For each input the network gives four output scores and their softmax:

    h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h),    y_t = h_t W_hy + b_y,    p_t = softmax(y_t)

`hello()` shows y_t and p_t before and after training, so the target's score can be seen to
rise. The training settings are those of configs/hello.yaml (kept equal by a test).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import CharRNNError

# configs/hello.yaml: one stream of the whole word per update, Adam at a high learning rate.
HELLO = {"hidden_size": 8, "batch_size": 1, "seq_len": 4, "lr": 0.05, "max_steps": 300,
         "val_fraction": 0, "eval_every": 100, "save_every": 100}


@dataclass
class Row:
    input: str
    target: str
    target_id: int
    scores: list  # y_t, one per vocabulary character
    probs: list  # softmax(y_t)

    @property
    def target_prob(self) -> float:
        return self.probs[self.target_id]


@dataclass
class Walkthrough:
    word: str
    chars: str  # the vocabulary, in id order
    hidden_size: int
    activation: str
    steps: int
    before: list  # of Row
    after: list

    @staticmethod
    def loss(rows) -> float:
        return float(np.mean([-np.log(r.target_prob) for r in rows]))

    def to_dict(self) -> dict:
        def rows(rs):
            return [{"input": r.input, "target": r.target, "scores": r.scores, "probs": r.probs} for r in rs]

        return {"word": self.word, "vocabulary": list(self.chars), "hidden_size": self.hidden_size,
                "activation": self.activation, "steps": self.steps, "loss_before": self.loss(self.before),
                "loss_after": self.loss(self.after), "before": rows(self.before), "after": rows(self.after)}


def outputs(model, vocab, word: str) -> list:
    """Feed word[:-1] one character at a time from a zero state; one Row per input."""
    state = model.zero_state(1)
    rows = []
    for c, target in zip(word[:-1], word[1:]):
        logits, state = model.step(np.array([vocab.index(c)], dtype=np.intp), state)
        y = logits[0].astype(np.float64)
        p = np.exp(y - y.max())
        p /= p.sum()
        rows.append(Row(c, target, vocab.index(target), y.tolist(), p.tolist()))
    return rows


def hello(word: str = "hello", steps: Optional[int] = None, seed: int = 0, activation: str = "tanh") -> Walkthrough:
    """Train on `word` (the textbook "hello" by default) and return its outputs before and after."""
    from .config import Config
    from .model import Model
    from .training import Run
    from .vocab import Vocab

    if len(word) < 2:
        raise CharRNNError(f"the word needs at least 2 characters, got {word!r}")
    settings = {**HELLO, "seq_len": len(word) - 1, "seed": seed, "activation": activation}
    if steps is not None:
        settings["max_steps"] = steps
    config = Config.from_dict(settings)
    vocab = Vocab.from_text(word)
    before = outputs(Model.from_config(config, len(vocab)).init(seed), vocab, word)  # where train() starts
    result = Run(config, text=word, out=None).train()  # in memory: nothing written
    after = outputs(result.model, vocab, word)
    return Walkthrough(word, vocab.chars, config.hidden_size, activation, result.steps, before, after)


def _show(c: str) -> str:
    return c if c.isprintable() and not c.isspace() else repr(c)


def format_walkthrough(w: Walkthrough) -> str:
    # Columns in the order the characters first appear in the word (h e l o, as in the textbook example),
    # not in id order (e h l o); the numbers are the same either way.
    order = sorted(range(len(w.chars)), key=lambda i: w.word.index(w.chars[i]))
    chars = [_show(w.chars[i]) for i in order]
    cell = 9

    def cells(values, target_id, fmt):
        out = []
        for i in order:
            text = format(values[i], fmt)
            out.append((f"[{text}]" if i == target_id else f" {text} ").rjust(cell))
        return "".join(out)

    def table(title, rows):
        lines = [title,
                 "input  target |" + "scores y = h W_hy + b_y".center(cell * len(chars)) + " |"
                 + "probabilities softmax(y)".center(cell * len(chars)),
                 " " * 14 + "|" + "".join(c.center(cell) for c in chars) + " |"
                 + "".join(c.center(cell) for c in chars)]
        for r in rows:
            lines.append(f"{_show(r.input):^5}  {_show(r.target):^6} |" + cells(r.scores, r.target_id, "+.2f")
                         + " |" + cells(r.probs, r.target_id, ".3f"))
        return lines

    lines = [f"{w.word!r}: vocabulary {' '.join(chars)}, one-hot inputs, an Elman network of "
             f"{w.hidden_size} {w.activation} units.",
             "Each input character predicts the next; [brackets] mark the target.", ""]
    lines += table(f"before training: loss {w.loss(w.before):.4f} nats/char", w.before)
    lines.append("")
    lines += table(f"after {w.steps} updates: loss {w.loss(w.after):.4f} nats/char", w.after)
    lines += ["", "the target's probability: " + ", ".join(
        f"{_show(a.input)}->{_show(a.target)} {a.target_prob:.2f} -> {b.target_prob:.2f}"
        for a, b in zip(w.before, w.after))]
    return "\n".join(line.rstrip() for line in lines)
