#!/usr/bin/env python3
"""The PyTorch peer: the same character-level RNN recipe as charrnn, written with torch on the CPU.

The network a PyTorch user would write: one-hot input, nn.RNN / nn.LSTM / nn.GRU, dropout
between layers and before nn.Linear, softmax cross-entropy, B streams with the hidden state
carried across chunks, torch.optim. It reads charrnn's own YAML configs and takes the same
flags, so a race between the two runs one recipe:

  cell (elman/lstm/gru), activation (tanh/relu), layers, hidden_size, dropout, batch_size,
  seq_len, optimizer (adam/adagrad/rmsprop/sgd, momentum), lr, weight_decay (decoupled,
  weight matrices only), lr_schedule (constant/step/cosine by steps or by the clock, lr_min,
  lr_decay, lr_decay_every), warmup_steps, clip and clip_mode, max_steps/epochs/max_time,
  val_fraction, eval_every, seed.

Everything that is not the network is charrnn's own code, so nothing else can differ: the
corpus is read (gzip, bzip2 and xz too), split into training text and validation tail, and
cut into streams by charrnn.data, and the config is resolved by charrnn.config. The weights
start as charrnn's do (U(-1/sqrt(H), 1/sqrt(H)), zero biases, the LSTM's forget-gate bias 1);
validation during training is charrnn's (up to 128 streams of at least 2,048 characters).

torch is not a dependency of charrnn: `make peer` builds .venv-peer with torch==2.13.0 (CPU).

usage:
  .venv-peer/bin/python bench/torch_peer.py train CORPUS... [--config FILE] [--out peer.pt] [--FLAG VALUE...]
  .venv-peer/bin/python bench/torch_peer.py eval FILE --model peer.pt [--json]
  .venv-peer/bin/python bench/torch_peer.py sample --model peer.pt [--length 1000] [--temp 0.8] [--prime TEXT] [--seed N]
  .venv-peer/bin/python bench/torch_peer.py sample --hidden-size 512 --vocab-size 84 --speed   # untrained, for speed

train prints one JSON line on stdout: steps, elapsed, chars_per_sec (every update, validation
included, as charrnn train reports it), steady_chars_per_sec (after the first --skip updates, default 3,
for speed comparisons), train_loss, best_val_loss, ...
"""
from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from dataclasses import fields

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # charrnn's config and data code, from the checkout this file is in

from charrnn.config import Config, field_type, resolve  # noqa: E402
from charrnn.errors import CharRNNError  # noqa: E402

EVAL_CHUNK = 8192  # one-stream scoring runs the text in pieces of this many steps, state carried
# Config keys the peer does not implement, with the only value it accepts (charrnn's default).
UNSUPPORTED = {"tbptt_stride": None, "init_from": None, "patience": None, "dtype": "float32", "init": "uniform",
               "init_scale": 1.0, "val": None, "encoding": "utf-8"}


def build_net(config: Config, vocab_size: int):
    """The network for `config`, initialised as charrnn initialises its own."""
    import torch
    import torch.nn as nn

    class CharRNN(nn.Module):
        def __init__(self):
            super().__init__()
            V, H, L, p = vocab_size, config.hidden_size, config.layers, config.dropout
            self.onehot = nn.Embedding.from_pretrained(torch.eye(V), freeze=True)  # one-hot rows
            if config.cell == "elman":
                self.rnn = nn.RNN(V, H, L, nonlinearity=config.activation, dropout=p if L > 1 else 0.0)
            else:
                self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[config.cell](V, H, L, dropout=p if L > 1 else 0.0)
            self.drop = nn.Dropout(p)
            self.out = nn.Linear(H, V)

        def forward(self, x, state=None):  # x (T, B) ids -> logits (T, B, V), state
            h, state = self.rnn(self.onehot(x), state)
            return self.out(self.drop(h)), state

    torch.manual_seed(config.seed)
    net = CharRNN()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.startswith("rnn.bias") or name == "out.bias":
                p.zero_()
            if config.cell == "lstm" and name.startswith("rnn.bias_ih"):  # gates i, f, g, o
                p[config.hidden_size : 2 * config.hidden_size] = 1.0
    return net


def make_optimizer(config: Config, params):
    import torch

    lr = config.lr
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=0.99, eps=1e-8)
    if config.optimizer == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=1e-8)
    return torch.optim.SGD(params, lr=lr, momentum=config.momentum)


def lr_at(config: Config, step: int, progress: float) -> float:
    """charrnn's schedule (charrnn.optim.lr_at), restated: warmup, then constant, step or cosine."""
    if config.warmup_steps and step <= config.warmup_steps:
        return config.lr * step / config.warmup_steps
    if config.lr_schedule == "step":
        return config.lr * config.lr_decay ** (step // config.lr_decay_every)
    if config.lr_schedule == "cosine":
        q = min(1.0, max(0.0, progress))
        return config.lr_min + (config.lr - config.lr_min) * 0.5 * (1 + math.cos(math.pi * q))
    return config.lr


def loss_sum(net, rows, chunk: int = EVAL_CHUNK) -> tuple:
    """Summed cross-entropy of rows[:, 1:] given rows[:, :-1], each row one stream from zero."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(rows[:, :-1].T.astype("int64"))  # (N-1, S)
    y = torch.from_numpy(rows[:, 1:].T.astype("int64"))
    total, state = 0.0, None
    with torch.inference_mode():
        for i in range(0, x.shape[0], chunk):
            logits, state = net(x[i : i + chunk], state)
            total += F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i : i + chunk].reshape(-1),
                                     reduction="sum").item()
    return total, y.numel()


def score_ids(net, ids, streams: int = 1) -> tuple:
    """Mean loss of ids[1:] given ids[:-1], as charrnn.scoring.score_ids: S streams from zero
    states plus the leftover as one more; S = 1 is `charrnn eval`'s one stream."""
    import numpy as np

    was_training = net.training
    net.eval()
    streams = max(1, min(streams, len(ids) // 2))
    n = len(ids) // streams
    total, count = loss_sum(net, np.asarray(ids[: streams * n]).reshape(streams, n))
    rest = np.asarray(ids[streams * n :])
    if len(rest) >= 2:
        t2, c2 = loss_sum(net, rest[None, :])
        total, count = total + t2, count + c2
    net.train(was_training)
    return total / count, count


def train(config: Config, corpus: list, out: str, quiet: bool = False, skip: int = 3) -> dict:
    import torch
    import torch.nn.functional as F

    from charrnn.data import Streams, load_corpus, split

    data = load_corpus(corpus)
    parts = split(data.ids, config.val_fraction, config.batch_size, config.seq_len)
    streams = Streams(parts.train, config.batch_size, config.seq_len)
    net = build_net(config, len(data.vocab))
    params = [p for p in net.parameters() if p.requires_grad]
    decayed = [p for name, p in net.named_parameters() if p.requires_grad and p.ndim > 1]
    opt = make_optimizer(config, params)
    max_steps = config.max_steps
    if config.epochs is not None:
        by_epochs = max(1, math.ceil(config.epochs * streams.chunks_per_epoch))
        max_steps = by_epochs if max_steps is None else min(max_steps, by_epochs)
    if max_steps is None and config.max_time is None:
        max_steps = streams.chunks_per_epoch
    val_streams = None if parts.val is None else max(1, min(128, len(parts.val) // 2048))
    step, chunk, state, best, best_state, loss = 0, 0, None, None, None, float("nan")
    net.train()
    start = time.perf_counter()
    warm = None  # (time, step) after the first `skip` updates, whose one-off set-up costs are not speed
    while True:
        if chunk == streams.chunks_per_epoch:  # a new epoch starts from zero states
            chunk, state = 0, None
        x, y = (torch.from_numpy(a) for a in streams.chunk(chunk))  # (T, B) each
        logits, state = net(x, state)
        state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
        loss_t = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss_t.backward()
        if config.clip and config.clip_mode == "norm":
            torch.nn.utils.clip_grad_norm_(params, config.clip)
        elif config.clip:
            torch.nn.utils.clip_grad_value_(params, config.clip)
        elapsed = time.perf_counter() - start
        progress = min(1.0, max(step / max_steps if max_steps else 0.0,
                                elapsed / config.max_time if config.max_time else 0.0))
        lr = lr_at(config, step + 1, progress)
        for group in opt.param_groups:
            group["lr"] = lr
        if config.weight_decay:  # decoupled, as charrnn: p -= lr * wd * p on weight matrices
            with torch.no_grad():
                for p in decayed:
                    p.mul_(1.0 - lr * config.weight_decay)
        opt.step()
        step, chunk, loss = step + 1, chunk + 1, loss_t.item()
        if step == skip:
            warm = (time.perf_counter(), step)
        if not math.isfinite(loss):
            raise CharRNNError(f"training diverged at step {step}: the loss is not finite")
        elapsed = time.perf_counter() - start
        done = (max_steps is not None and step >= max_steps) or (
            config.max_time is not None and elapsed >= config.max_time)
        if val_streams and (step % config.eval_every == 0 or done):
            val, _ = score_ids(net, parts.val, val_streams)
            if best is None or val < best:
                best, best_state = val, copy.deepcopy(net.state_dict())
            if not quiet:
                print(f"peer step {step} loss {loss:.4f} val {val:.4f} {elapsed:.0f}s", file=sys.stderr, flush=True)
        if done:
            break
    end = time.perf_counter()
    elapsed = end - start
    steady = (step - warm[1]) * config.batch_size * config.seq_len / (end - warm[0]) if warm and step > skip else None
    _save(out, config, data.vocab.chars, best_state or net.state_dict(), step, best)
    return {"side": "torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cell": config.cell, "steps": step, "elapsed": round(elapsed, 3),
            "chars_per_sec": round(step * config.batch_size * config.seq_len / elapsed, 1),
            "steady_chars_per_sec": None if steady is None else round(steady, 1),
            "train_loss": loss, "best_val_loss": best, "out": out}


def _save(path, config, chars, state_dict, step, val):
    import torch

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    torch.save({"config": config.to_dict(), "chars": chars, "state_dict": state_dict,
                "step": step, "val_loss": val}, tmp)
    os.replace(tmp, path)


def load(path):
    import torch

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CharRNNError(f"model not found: {path}") from None
    config = Config.from_dict(saved["config"])
    net = build_net(config, len(saved["chars"]))
    net.load_state_dict(saved["state_dict"])
    net.eval()
    return net, saved["chars"], config


def encode(chars: str, text: str):
    import numpy as np

    index = {c: i for i, c in enumerate(chars)}
    unknown = sorted(set(text) - set(index))
    if unknown:
        raise CharRNNError(f"the text has characters the model never saw: {', '.join(map(repr, unknown[:10]))}")
    return np.array([index[c] for c in text], dtype=np.int64)


def evaluate(model_path: str, file: str) -> dict:
    """`charrnn eval`'s measure: the whole file as one stream from a zero state."""
    from charrnn.data import read_text

    net, chars, _ = load(model_path)
    ids = encode(chars, read_text(file))
    if len(ids) < 2:
        raise CharRNNError(f"need at least 2 characters to score, got {len(ids)}")
    loss, count = score_ids(net, ids, 1)
    return {"loss": loss, "bits_per_char": loss / math.log(2), "perplexity": math.exp(min(loss, 700)),
            "predictions": count}


def sample(net, chars: str, length: int, temperature: float, prime: str, seed) -> tuple:
    """One stream, one character at a time, as a torch user samples: softmax(y / temp), multinomial."""
    import torch

    gen = torch.Generator().manual_seed(seed if seed is not None else int(time.time_ns() % 2**31))
    ids = encode(chars, prime or "\n")  # no prime: as if after a line break, as charrnn
    out, state = [], None
    t0 = time.perf_counter()
    with torch.inference_mode():
        if len(ids) > 1:  # the prime but its last character sets the state
            _, state = net(torch.from_numpy(ids[:-1])[:, None], None)
        x = torch.tensor([[ids[-1]]], dtype=torch.int64)
        for _ in range(length):
            logits, state = net(x, state)
            if temperature == 0:
                nxt = int(logits[0, 0].argmax())
            else:
                p = torch.softmax(logits[0, 0] / temperature, -1)
                nxt = int(torch.multinomial(p, 1, generator=gen))
            out.append(chars[nxt])
            x[0, 0] = nxt
    return "".join(out), length / max(time.perf_counter() - t0, 1e-9)


def add_config_flags(parser):
    for f in fields(Config):
        if f.name == "threads":  # the peer's own --threads sets torch's
            continue
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=field_type(f), default=None,
                            choices=f.metadata.get("choices"), help=f"{f.metadata['help']} [default: {f.default}]")


def parse(argv):
    ap = argparse.ArgumentParser(prog="torch_peer.py", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train on CORPUS with a charrnn config")
    t.add_argument("corpus", nargs="+")
    t.add_argument("--config", dest="config_file")
    t.add_argument("--out", default="peer.pt", help="the trained model (best validation) [default: peer.pt]")
    t.add_argument("--quiet", "-q", action="store_true")
    t.add_argument("--skip", type=int, default=3, help="steady_chars_per_sec counts the updates after these [default: 3]")
    t.add_argument("--threads", type=int, default=0, help="torch threads [default: torch's choice]")
    add_config_flags(t)
    e = sub.add_parser("eval", help="score FILE as one stream, as charrnn eval does")
    e.add_argument("file")
    e.add_argument("--model", required=True)
    e.add_argument("--json", action="store_true")
    s = sub.add_parser("sample", help="generate text, one stream")
    s.add_argument("--model", help="a trained peer model; without it an untrained one (for --speed)")
    s.add_argument("--length", type=int, default=1000)
    s.add_argument("--temp", type=float, default=0.8)
    s.add_argument("--prime", default="")
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--speed", action="store_true", help="print chars/s to stderr")
    s.add_argument("--hidden-size", type=int, default=512, help="untrained model: H")
    s.add_argument("--cell", default="elman", choices=("elman", "lstm", "gru"), help="untrained model: cell")
    s.add_argument("--vocab-size", type=int, default=84, help="untrained model: V")
    for p in (e, s):
        p.add_argument("--threads", type=int, default=0, help="torch threads [default: torch's choice]")
    return ap.parse_args(argv)


def run(a) -> None:
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    if a.command == "train":
        overrides = {f.name: getattr(a, f.name) for f in fields(Config) if f.name != "threads"}
        config = resolve(a.config_file, overrides)
        for name, allowed in UNSUPPORTED.items():
            if getattr(config, name) != allowed:
                raise CharRNNError(f"the peer does not implement {name} (got {getattr(config, name)!r})")
        if config.cell == "elman" and config.activation == "sigmoid":
            raise CharRNNError("the peer's nn.RNN has tanh and relu only, not sigmoid")
        print(json.dumps(train(config, a.corpus, a.out, a.quiet, a.skip)))
    elif a.command == "eval":
        score = evaluate(a.model, a.file)
        print(json.dumps(score) if a.json else
              f"loss {score['loss']:.4f} nats/char  {score['bits_per_char']:.4f} bits/char  "
              f"perplexity {score['perplexity']:.3f}  ({score['predictions']} predictions)")
    else:
        if a.model:
            net, chars, _ = load(a.model)
        else:
            net = build_net(Config(hidden_size=a.hidden_size, cell=a.cell), a.vocab_size)
            chars = "\n" + "".join(chr(33 + i) for i in range(a.vocab_size - 1))
        text, speed = sample(net.eval(), chars, a.length, a.temp, a.prime, a.seed)
        sys.stdout.write(a.prime + text + ("" if text.endswith("\n") else "\n"))
        if a.speed:
            print(f"chars/s={speed:.0f}", file=sys.stderr)


def main(argv=None) -> None:
    a = parse(argv)
    try:
        run(a)
    except CharRNNError as exc:
        sys.exit(f"Error: {exc}")


if __name__ == "__main__":
    main()
