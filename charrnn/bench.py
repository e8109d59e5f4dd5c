"""Measure this machine: float32 matmul peak, training, sampling and evaluation speed.

Everything runs on synthetic ids drawn from a real vocabulary size, so the figures
depend only on the shapes, not on a corpus. FLOPs per training character for an Elman
layer: about 6 (H*H + H*V) (forward, and the two backward products; the one-hot input
is a gather), so share of peak = FLOPs per char x chars/s / measured matmul peak.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class BenchResult:
    hidden_size: int
    batch_size: int
    seq_len: int
    vocab_size: int
    matmul_gflops: float
    train_chars_per_sec: float
    train_gflops: float
    share_of_peak: float
    sample_chars_per_sec: float
    sample64_chars_per_sec: float
    eval_chars_per_sec: float

    def to_dict(self) -> dict:
        return asdict(self)


def matmul_peak(n: int = 2048, repeats: int = 5, dtype=np.float32) -> float:
    """Best GFLOP/s of an n x n float32 matrix product: the machine's practical peak."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=dtype), rng.random((n, n), dtype=dtype)
    out = np.empty((n, n), dtype)
    np.matmul(a, b, out=out)
    best = min(_timed(lambda: np.matmul(a, b, out=out)) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _model(config, V):
    from . import fused
    from .model import Model

    return Model.from_config(config, V).init(config.seed).use_kernels(fused.resolve(config.kernels))


def train_speed(config, V: int = 84, seconds: float = 5.0, warmup: int = 3, steps: int = 3) -> float:
    """Training characters per second: forward, backward, clip and optimizer step."""
    from . import optim, threads

    model = _model(config, V)
    opt = optim.make(config.optimizer, model.params, config.lr)
    rng = np.random.default_rng(0)
    B, T = config.batch_size, config.seq_len
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = model.zero_state(B)
    tuner = threads.tuner(model.thread_setter)  # threads as training picks them

    def step():
        nonlocal state
        tuner.begin()
        _, state = model.forward(x, y, state)
        grads = model.backward()
        optim.clip_by_global_norm(grads, config.clip)
        opt.step(model.params, grads)
        tuner.end()

    for _ in range(warmup):
        step()
    while not tuner.settled:  # time the choice training would make, not the probes
        step()
    done, start = 0, time.perf_counter()
    while done < steps or time.perf_counter() - start < seconds:  # at least `steps` steps
        step()
        done += 1
    return done * B * T / (time.perf_counter() - start)


def sample_speed(config, V: int = 84, streams: int = 1, chars: int = 2000) -> float:
    """Generated characters per second, in total over `streams` samples drawn together,
    through the same generator `charrnn sample --num-samples` uses (no output written)."""
    from .sampling import Generation
    from .vocab import Vocab

    steps = max(50, chars // streams)
    gen = Generation(_model(config, V), Vocab(np.arange(32, 32 + V)), streams, steps, 0.8, "", 0, None)
    start = time.perf_counter()
    for _ in gen.steps():
        pass
    return steps * streams / (time.perf_counter() - start)


def eval_speed(config, V: int = 84, chars: int = 50_000) -> float:
    """Characters per second scoring one stream, as `charrnn eval` does."""
    from .scoring import score_ids

    model = _model(config, V)
    ids = np.random.default_rng(0).integers(0, V, chars).astype(np.uint8)
    start = time.perf_counter()
    score_ids(model, ids)
    return chars / (time.perf_counter() - start)


def run(config, V: int = 84, seconds: float = 5.0, progress=lambda name: None) -> BenchResult:
    progress("matmul peak")
    peak = matmul_peak()
    progress("training")
    train = train_speed(config, V, seconds)
    flops = _model(config, V).flops_per_char()
    progress("sampling")
    s1 = sample_speed(config, V, 1)
    s64 = sample_speed(config, V, 64, chars=64 * 200)
    progress("evaluation")
    ev = eval_speed(config, V)
    return BenchResult(config.hidden_size, config.batch_size, config.seq_len, V, peak, train,
                       flops * train / 1e9, flops * train / 1e9 / peak, s1, s64, ev)


# -- one cell's update against its own matrix products (charrnn bench --cell) ---------------

@dataclass
class CellBench:
    """One cell's training update, the same update's matrix products timed alone, and sampling."""

    cell: str
    hidden_size: int
    batch_size: int
    seq_len: int
    vocab_size: int
    blas_threads: int  # those training picked (threads.Tuner), or --threads
    kernels: str  # the gate maths: numba or numpy (config.kernels, resolved)
    train_chars_per_sec: float
    update_ms: float
    products_ms: float
    update_over_products: float
    sample_chars_per_sec: float

    def to_dict(self) -> dict:
        return asdict(self)


def _update(config, V: int):
    """A model, its optimizer and one training update on fixed random ids, as a function."""
    from . import optim

    model = _model(config, V)
    opt = optim.make(config.optimizer, model.params, config.lr)
    opt.use_kernels(model.kernels)
    rng = np.random.default_rng(0)
    B, T = config.batch_size, config.seq_len
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = [model.zero_state(B)]
    gen = np.random.default_rng(1)

    def update():
        _, state[0] = model.forward(x, y, state[0], train=True, rng=gen)
        grads = model.backward()
        optim.clip_by_global_norm(grads, config.clip)
        opt.step(model.params, grads)

    return model, update


def update_products(model, T: int, B: int) -> list:
    """Every matrix product one training update of `model` performs, as (a, b, out) triples
    with the shapes and memory layouts the update uses (cells.py, model.py): the step
    products, the output layer, and the weight gradients over the whole chunk."""
    H, V, dt = model.H, model.V, model.dtype
    rng = np.random.default_rng(0)
    new = lambda *shape: rng.random(shape, dtype=dt) - 0.5  # noqa: E731
    N = T * B
    out = []
    for layer in model.layers:
        GH, D = layer.n_gates * H, layer.n_in
        R = 4 * H if layer.kind == "gru" else GH  # the GRU's gradient rows: [d h_n | r | z | n]
        W_hT, W_h, h, g = new(GH, H), new(H, GH), new(T + 1, H, B), new(T, R, B)
        hP, daP, dW = new(H, T + 1, B)[:, :T].reshape(H, N), new(R, N), new(max(D, H), GH)
        g_out, h_out = new(T, GH, B), new(T + 1, H, B)  # outputs apart from inputs: no growth to inf
        out += [(W_hT, h[t], g_out[t]) for t in range(T)]  # forward steps
        out += [(W_h, g[t, :GH], h_out[t]) for t in range(1, T)]  # backward steps
        out.append((hP, daP[:GH].T, dW[:H]))  # d W_h, one product over the chunk
        dg = daP[R - GH :]  # the input side's rows
        if layer.embed:  # d W_x: dg @ the one-hot's (n, V); numba's kernels scatter instead (fused.py)
            if model.kernels == "numpy":
                out.append((dg, new(D, N).T, new(GH, D)))
        else:
            out.append((new(D, N), dg.T, dW[:D]))
            W_xT, W_x, x, dx = new(GH, D), new(D, GH), new(T, D, B), new(T, D, B)
            out += [(W_xT, x, g_out), (W_x, g[:, R - GH :], dx)]  # the input projection, d x for the layer below
    top, probs, W_hy = new(H, N), new(V, N), new(H, V)
    out += [(W_hy.T, top, new(V, N)), (top, probs.T, new(H, V)),
            (W_hy, probs.reshape(V, T, B).transpose(1, 0, 2), new(T, H, B))]  # d top per step, as the model
    return out


def cell_bench(config, V: int = 84, seconds: float = 5.0, progress=lambda name: None) -> CellBench:
    """Training chars/s, one update against its products timed alone, and one-stream sampling,
    for config.cell. The BLAS threads are those training would pick (threads.Tuner, after its
    first comparison); then updates and products alternate, round by round (medians of each),
    so that a machine busy with other work slows both alike."""
    from . import threads

    model, update = _update(config, V)
    triples = update_products(model, config.seq_len, config.batch_size)

    def products():  # as the update multiplies: the compiled path splits them between its threads
        for a, b, o in triples:
            model._matmul(a, b, o)

    progress(f"{config.cell}: choosing threads")
    tuner = threads.tuner(model.thread_setter)
    while tuner.updates < 2 or not tuner.settled:  # the first update makes the buffers
        tuner.begin()
        update()
        tuner.end()
    blas = tuner.current
    tuner.apply(blas)
    products()
    progress(f"{config.cell}: training, and its products alone")
    updates, prods, start = [], [], time.perf_counter()
    while len(updates) < 5 or time.perf_counter() - start < seconds:
        updates.append(_timed(update))
        prods.append(_timed(products))
    upd, prod = float(np.median(updates)), float(np.median(prods))
    progress(f"{config.cell}: sampling")
    if threads.is_auto():
        threads.set_blas(1)  # as `charrnn sample` samples
    s1 = sample_speed(config, V, 1)
    B, T = config.batch_size, config.seq_len
    return CellBench(config.cell, config.hidden_size, B, T, V, blas, model.kernels, B * T / upd, upd * 1e3,
                     prod * 1e3, upd / prod, s1)
