"""Training's compiled gate maths (charrnn/kernels.py, fused.py) against numpy's path and against
central differences; how `kernels` resolves; numba stays out of sampling's import.

The numba tests skip where numba is missing (the optional extra `fast`; `make venv` installs it).
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from gradcheck_util import check_gradients

from charrnn import fused
from charrnn.config import Config
from charrnn.errors import ConfigError
from charrnn.model import Model

needs_numba = pytest.mark.skipif(not fused.installed(), reason="numba is not installed (pip install 'charrnn[fast]')")
CELLS = [("elman", "tanh"), ("elman", "relu"), ("elman", "sigmoid"), ("lstm", "tanh"), ("gru", "tanh")]


def _pair(cell, activation, dtype, layers=2, dropout=0.0, seed=0):
    """The same model twice, numpy's layers and the compiled ones, with every bias moved off zero."""
    models = []
    for kernels in ("numpy", "numba"):
        m = Model(7, 6, activation, layers=layers, dtype=dtype, cell=cell, dropout=dropout).init(seed)
        rng = np.random.default_rng(seed + 1)
        for p in m.params.values():
            p += rng.normal(0, 0.3, p.shape).astype(p.dtype)
        models.append(m.use_kernels(kernels))
    return models


def _blocks_of(blocks, monkeypatch):
    """Every product in tiles (tile rows, kb deep) instead of fused.blocks()'s (None: its own)."""
    if blocks is not None:
        monkeypatch.setattr(fused, "blocks", lambda dtype, K, N, rows, plain=True: blocks)


def _random_state(model, B, rng):
    return [tuple(rng.normal(0, 0.5, a.shape).astype(model.dtype) for a in s) if isinstance(s, tuple)
            else rng.normal(0, 0.5, s.shape).astype(model.dtype) for s in model.zero_state(B)]


def _train_step(model, x, y, state, advance=None):
    loss, new_state = model.forward(x, y, state, train=True, advance=advance, rng=np.random.default_rng(5))
    return loss, new_state, {k: g.copy() for k, g in model.backward().items()}


@needs_numba
@pytest.mark.parametrize("cell,activation", CELLS)
@pytest.mark.parametrize("dtype,tol", [("float64", 1e-12), ("float32", 2e-5)])
@pytest.mark.parametrize("parts,blocks", [(1, None), (4, None), (1, (4, 5)), (3, (1, 4))])
def test_compiled_training_step_matches_numpy(cell, activation, dtype, tol, parts, blocks, monkeypatch):
    """Loss, carried state and every gradient, 2 layers with dropout and TBPTT's advance: float64
    to rounding (tanh is libm's there), float32 within its rounding (tanh is a rational fit).
    In one part and in 4 (H = 6: parts of 1 and 2 units, more parts than numba has threads);
    every product in tiles as fused.blocks() makes them, or forced (tile rows, kb deep), which
    leave partial tiles."""
    _blocks_of(blocks, monkeypatch)
    monkeypatch.setattr(fused, "_parts", parts)
    ref, fast = _pair(cell, activation, dtype, dropout=0.3)
    rng = np.random.default_rng(3)
    T, B = 9, 5
    x, y = rng.integers(0, 7, (T, B)), rng.integers(0, 7, (T, B))
    state = _random_state(ref, B, rng)
    (l0, s0, g0), (l1, s1, g1) = (_train_step(m, x, y, state, advance=6) for m in (ref, fast))
    assert fast.train_layers[0].__class__.__module__ == "charrnn.fused"
    assert abs(l0 - l1) <= tol * abs(l0)
    flat = lambda st: np.concatenate([np.ravel(a) for s in st for a in (s if isinstance(s, tuple) else (s,))])  # noqa: E731
    np.testing.assert_allclose(flat(s1), flat(s0), rtol=0, atol=tol * 10)
    for name in g0:
        scale = np.abs(g0[name]).max()
        assert scale > 0, name
        assert np.abs(g1[name] - g0[name]).max() <= tol * 10 * scale, name


@needs_numba
@pytest.mark.parametrize("cell,activation", CELLS)
def test_compiled_gradients_match_finite_differences(cell, activation):
    """float64, every element of every parameter, carried-in state random, two layers."""
    _, model = _pair(cell, activation, "float64", seed=4)
    rng = np.random.default_rng(8)
    T, B = 3, 2
    x, y = rng.integers(0, 7, (T, B)), rng.integers(0, 7, (T, B))
    check_gradients(model, x, y, _random_state(model, B, rng), train=True)


@needs_numba
@pytest.mark.parametrize("parts", [1, 3])
def test_compiled_gradients_in_parts_match_finite_differences(parts, monkeypatch):
    """The LSTM's loops split in parts (H = 6 in 3: two units each), float64."""
    monkeypatch.setattr(fused, "_parts", parts)
    _, model = _pair("lstm", "tanh", "float64", seed=5)
    rng = np.random.default_rng(9)
    x, y = rng.integers(0, 7, (3, 2)), rng.integers(0, 7, (3, 2))
    check_gradients(model, x, y, _random_state(model, 2, rng), train=True)


@needs_numba
@pytest.mark.parametrize("parts,blocks", [(1, None), (2, None), (3, None), (1, (2, 3)), (2, (3, 2))])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_split_product_is_numpys(parts, blocks, dtype, monkeypatch):
    """fused.matmul: transposed operands, stacks, a broadcast matrix, row and column splits, views
    with a leading dimension wider than their rows, in fused.blocks()'s tiles or forced ones;
    what BLAS cannot read in place goes to numpy."""
    fused.load()
    _blocks_of(blocks, monkeypatch)
    monkeypatch.setattr(fused, "_parts", parts)
    rng = np.random.default_rng(parts)
    new = lambda *shape: rng.normal(size=shape).astype(dtype)  # noqa: E731
    wide = new(9, 20)
    cases = [(new(7, 5), new(5, 11)),  # more columns than rows: split by columns
             (new(12, 5), new(5, 3)),  # by rows
             (new(5, 7).T, new(11, 5).T),  # both transposed
             (wide[:, 3:8], new(5, 4)),  # a leading dimension of 20
             (new(6, 5), new(4, 5, 3)),  # a matrix against a stack
             (new(4, 6, 5), new(4, 5, 3)),  # two stacks
             (new(6, 4).reshape(6, 4)[:, ::2], new(2, 3)),  # strided columns: numpy's own product
             (new(1, 5), new(5, 1))]
    for a, b in cases:
        expected = np.matmul(a, b)
        out = np.full(expected.shape, np.nan, dtype)
        fused.matmul(a, b, out)
        np.testing.assert_allclose(out, expected, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-6)


def test_threads_split_the_loops_or_go_to_blas(monkeypatch):
    """With a pool that starts fast (OpenMP, TBB) the loops take the threads and BLAS one; with
    numba's own queue, BLAS takes them and the loops run in one part."""
    from charrnn import threads

    blas = []
    monkeypatch.setattr(threads, "set_blas", blas.append)
    monkeypatch.setattr(fused, "_parts", 1)
    monkeypatch.setattr(fused, "_split", False)
    fused.use_threads(2)
    assert (blas, fused.parts()) == ([2], 1)
    if fused.installed():
        import numba

        monkeypatch.setattr(fused, "_split", True)
        before = numba.get_num_threads()
        try:
            fused.use_threads(2)
            assert blas[-1] == 1 and fused.parts() == min(2, numba.config.NUMBA_NUM_THREADS)
            assert numba.get_num_threads() == fused.parts()
        finally:
            numba.set_num_threads(before)
    fused.use_threads(None)  # the user's own BLAS count: left alone
    assert fused.parts() == 1 and len(blas) == (2 if fused.installed() else 1)


@needs_numba
def test_tiles_follow_a_rule_of_the_shape_and_the_blas(monkeypatch):
    """Tiles of at most a million multiply-adds, 256 deep, for float32 where OpenBLAS has its
    small-matrix kernels; elsewhere (under 16 rows, float64, another BLAS) a thread's share when
    the most threads share the product, whole depth."""
    fused.load()
    monkeypatch.setattr(fused, "_most_parts", lambda: 2)
    monkeypatch.setattr(fused, "_split", True)
    monkeypatch.setattr(fused._gemm, "small", True)
    assert fused.blocks(np.float32, 256, 32, 1024) == (64, 256)  # 122 rows would fit: a power of two
    assert fused.blocks(np.float32, 1024, 64, 256) == (32, 256)
    assert fused.blocks(np.float32, 100, 32, 77) == (39, 100)  # shallow: half each, whole depth
    assert fused.blocks(np.float32, 4096, 512, 101) == (51, 4096)  # 7 rows would fit: half each, whole depth
    assert fused.blocks(np.float64, 256, 32, 1024) == (512, 256)
    assert fused.blocks(np.float32, 256, 32, 1024, plain=False) == (512, 256)  # a transposed operand
    monkeypatch.setattr(fused, "_split", False)  # BLAS's threads split the products: a small tile would not
    assert fused.blocks(np.float32, 256, 32, 1024) == (512, 256)
    monkeypatch.setattr(fused._gemm, "small", False)
    monkeypatch.setattr(fused, "_split", True)
    assert fused.blocks(np.float32, 256, 32, 1024) == (512, 256)
    monkeypatch.setattr(fused, "_most_parts", lambda: 1)
    assert fused.blocks(np.float32, 256, 32, 1024) == (1024, 256)


@needs_numba
@pytest.mark.parametrize("cell", ["lstm", "gru", "elman"])
def test_compiled_results_are_the_same_whatever_the_parts(cell, monkeypatch):
    """float32, products of a few million multiply-adds and smaller: every part count the tuner
    may pick within a run's thread budget gives the same numbers to the bit, so its picks never
    change a run's results, nor a resumed run's."""
    rng = np.random.default_rng(0)
    T, B, V = 3, 32, 20
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    results = []
    monkeypatch.setattr(fused, "_most_parts", lambda: 3)  # the thread budget, which the tiles are cut for
    for parts in (1, 2, 3):
        model = Model(V, 160, cell=cell).init(1).use_kernels("numba")
        monkeypatch.setattr(fused, "_parts", parts)
        results.append(_train_step(model, x, y, model.zero_state(B)))
    for loss, _, grads in results[1:]:
        assert loss == results[0][0]
        for name, g in grads.items():
            np.testing.assert_array_equal(g, results[0][2][name], err_msg=name)


@needs_numba
@pytest.mark.parametrize("parts", [1, 2])
def test_compiled_lstm_with_outside_cell_gradients_is_numpys(parts, monkeypatch):
    """With d loss / d c_t from outside the layer (dcs, the encoder-decoder's), the compiled
    LSTM runs numpy's backward loop, which does not store d loss / d pre-activation for the
    chunk's products as the compiled loops do: every gradient is still numpy's, with dcs, then
    without (the compiled loop), then with again. (Before the fix, W_x's, W_h's and b's came from
    the previous chunk's columns.)"""
    from charrnn import cells

    monkeypatch.setattr(fused, "_parts", parts)
    fast, slow = fused.cell_classes()["lstm"](7, 6, embed=True), cells.LSTM(7, 6, embed=True)
    rng = np.random.default_rng(4)
    p = fast.init(rng, np.float64)
    ids = rng.integers(0, 7, (5, 3))
    state = fast.zero_state(3, np.float64)
    dhs, dcs = rng.normal(size=(5, 3, 6)), rng.normal(size=(5, 3, 6))
    for outside in (dcs, None, dcs):
        grads = []
        for layer in (fast, slow):
            layer.forward(p, ids, state)
            g = {k: np.zeros_like(v) for k, v in p.items()}
            layer.backward(p, dhs, g, need_dx=False, dcs=outside)
            grads.append(g)
        for name in p:
            assert np.abs(grads[0][name]).max() > 0, name
            np.testing.assert_allclose(grads[0][name], grads[1][name], rtol=1e-10, atol=1e-12, err_msg=name)


@needs_numba
def test_numpys_blas_is_found_and_checked():
    from charrnn import cblas

    gemm = cblas.find()
    assert gemm.sgemm and gemm.dgemm and gemm.sgemm != gemm.dgemm
    assert gemm.fn(np.float64) == (gemm.dgemm, gemm.wide)


@needs_numba
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_compiled_transposes_and_gather_are_numpys_to_the_bit(cell):
    """W_h^T and the one-hot's table with their sigmoid rows halved, and the gather, at sizes
    that leave partial tiles (V = 13, H = 11)."""
    from charrnn import cells

    fast_cls, slow_cls = fused.cell_classes()[cell], cells.CELL_CLASSES[cell]
    fast, slow = fast_cls(13, 11, embed=True), slow_cls(13, 11, embed=True)
    rng = np.random.default_rng(2)
    p = fast.init(rng, np.float32)
    p[fast.key_b][:] = rng.normal(size=p[fast.key_b].shape)
    W_x, W_h, b = p[fast.key_x], p[fast.key_h], p[fast.key_b]
    ids = rng.integers(0, 13, (5, 3))
    outs = []
    for layer in (fast, slow):
        WT, table = np.empty(W_h.T.shape, np.float32), np.empty(W_x.T.shape, np.float32)
        layer._transpose_halving(W_h, WT)
        layer._transpose_halving(W_x, table, b)
        g = np.empty((5, table.shape[0], 3), np.float32)
        layer._gather(table, ids, g)
        outs.append((WT, table, g))
    for mine, ref in zip(*outs):
        np.testing.assert_array_equal(mine, ref)
    assert (outs[0][0][: fast.sigmoid_rows] == W_h.T[: fast.sigmoid_rows] * 0.5).all()
    assert fast.sigmoid_rows == {"elman": 0, "lstm": 33, "gru": 22}[cell]


@needs_numba
@pytest.mark.parametrize("cell", ["elman", "lstm", "gru"])
def test_bench_lists_the_products_a_compiled_update_performs(cell):
    """As tests/test_cells.py's, less the one-hot's product, which the compiled path scatters."""
    from charrnn.bench import update_products

    T, B, H, V = 5, 3, 8, 11
    model = Model(V, H, layers=2, cell=cell).use_kernels("numba")
    macs = sum(int(np.prod(out.shape[:-2], dtype=int)) * a.shape[-2] * a.shape[-1] * b.shape[-1]
               for a, b, out in update_products(model, T, B))
    GH = model.layers[0].n_gates * H
    assert macs == model.flops_per_char() * T * B // 2 - 2 * GH * H * B


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_compiled_adam_steps_as_numpys_to_the_bit(dtype):
    from charrnn import optim

    rng = np.random.default_rng(0)
    ref = {"W": rng.normal(size=(9, 13)).astype(dtype), "b": rng.normal(size=(13,)).astype(dtype)}
    mine, start = {k: v.copy() for k, v in ref.items()}, ref["W"].copy()
    a, b = optim.Adam(ref, lr=3e-3, weight_decay=0.01), optim.Adam(mine, lr=3e-3, weight_decay=0.01)
    b.use_kernels("numba")
    for _ in range(25):
        grads = {k: rng.normal(size=v.shape).astype(dtype) for k, v in ref.items()}
        a.step(ref, grads)
        b.step(mine, {k: g.copy() for k, g in grads.items()})
    assert np.abs(ref["W"] - start).min() > 0  # every weight moved
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":  # numpy 1's scalar casting rounds s1 differently
        for k in ref:
            np.testing.assert_array_equal(mine[k], ref[k])
            for slot in ("m", "v"):
                np.testing.assert_array_equal(b.state[slot][k], a.state[slot][k])
    else:
        for k in ref:
            np.testing.assert_allclose(mine[k], ref[k], rtol=1e-6, atol=1e-7)


@needs_numba
def test_the_compiled_tanh_is_within_a_few_float32_ulp():
    from charrnn import kernels

    x = np.concatenate([np.linspace(-20, 20, 400_001), [0.0, 1e-30, -1e-7, 7.99, 8.5, np.inf, -np.inf]]).astype(np.float32)
    out = np.empty_like(x)
    kernels.tanh_into(x, out)
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.all(np.abs(out - exact) <= 8 * ulp)
    assert np.all(np.abs(out) <= 1) and out[-2] == -out[-1] >= 1 - 4e-7  # +-inf: +-1 within 4 ulp
    np.testing.assert_array_equal(out[:400_001], -out[:400_001][::-1])  # odd, as tanh, to the bit
    assert out[400_001] == 0 and abs(out[400_002] / np.float32(1e-30) - 1) < 4e-7  # tanh(x) = x near 0


@needs_numba
def test_training_with_kernels_reaches_numpys_losses(tmp_path):
    """100 LSTM updates on text: the two paths' loss curves stay within float32 drift."""
    from charrnn.training import Run

    text = "the quick brown fox jumps over the lazy dog. " * 60
    losses = {}
    for kernels in ("numpy", "numba"):
        config = Config(cell="lstm", hidden_size=24, batch_size=4, seq_len=16, max_steps=100, eval_every=50,
                        kernels=kernels, threads=1)
        result = Run(config, text=text, out=None).train()
        assert result.kernels == kernels
        losses[kernels] = np.array(result.losses)
    assert losses["numpy"][-1] < 0.8 * losses["numpy"][0]  # it learned
    np.testing.assert_allclose(losses["numba"], losses["numpy"], rtol=1e-3)


def test_kernels_resolve_to_what_this_machine_has(monkeypatch):
    assert fused.resolve("numpy") == "numpy"
    monkeypatch.setattr(fused, "installed", lambda: False)
    assert fused.resolve("auto") == "numpy"
    with pytest.raises(ConfigError, match="numba is not installed"):
        fused.resolve("numba")
    monkeypatch.setattr(fused, "installed", lambda: True)
    monkeypatch.setattr(fused, "load", lambda: None)  # as if the loops loaded (numba may be absent here)
    assert fused.resolve("auto") == "numba"
    with pytest.raises(ConfigError, match="kernels"):
        Config(kernels="cuda")
    with pytest.raises(ValueError, match="numpy or numba"):
        Model(5, 4).use_kernels("auto")


def test_numba_that_cannot_load_the_loops_falls_back_or_says_why(monkeypatch):
    monkeypatch.setattr(fused, "installed", lambda: True)

    def broken():
        raise RuntimeError("cannot cache function 'gather_columns': no locator available")

    monkeypatch.setattr(fused, "load", broken)
    assert fused.resolve("auto") == "numpy"
    with pytest.raises(ConfigError, match="could not load charrnn's compiled loops .*no locator.*--kernels numpy"):
        fused.resolve("numba")


def test_train_with_kernels_numba_and_no_numba_is_a_one_line_error(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from charrnn.cli import main

    monkeypatch.setattr(fused, "installed", lambda: False)
    corpus = tmp_path / "c.txt"
    corpus.write_text("hello world\n" * 400)
    result = CliRunner().invoke(main, ["train", str(corpus), "--kernels", "numba", "--max-steps", "2",
                                       "--out", str(tmp_path / "ck")])
    assert result.exit_code != 0
    assert "numba is not installed" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "ck").exists() or not any((tmp_path / "ck").iterdir())


def test_sampling_and_scoring_do_not_import_numba():
    """The cold start of sample and eval: numba (about 0.4 s to import) stays out of it."""
    code = ("import sys; import charrnn.cli, charrnn.sampling, charrnn.scoring, charrnn.model, charrnn.cells; "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_bench_cell_names_the_kernels_and_each_cells_threads():
    from click.testing import CliRunner

    from charrnn.cli import main

    r = CliRunner().invoke(main, ["bench", "--cell", "elman", "--cell", "gru", "--hidden-size", "8", "--batch-size", "2",
                                  "--seq-len", "4", "--seconds", "0.1", "--threads", "1", "--kernels", "numpy"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "numpy kernels" in lines[0]
    assert [line.split()[:2] for line in lines[2:]] == [["elman", "1"], ["gru", "1"]]
