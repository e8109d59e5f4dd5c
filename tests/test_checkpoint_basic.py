"""The checkpoint file: contents, plain-numpy readability, best/latest, atomic writes."""
from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from charrnn import __version__
from charrnn import checkpoint as ckpt
from charrnn.errors import CheckpointError
from charrnn.training import train
from charrnn.vocab import Vocab

from conftest import TINY_TEXT, tiny_config


def small_params(rng, V=4, H=3):
    return {"W_xh": rng.normal(size=(V, H)), "W_hh": rng.normal(size=(H, H)), "b_h": rng.normal(size=H),
            "W_hy": rng.normal(size=(H, V)), "b_y": rng.normal(size=V)}


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    params = {k: v.astype(np.float32) for k, v in small_params(rng).items()}
    vocab = Vocab.from_text("a😀c\n")
    config = tiny_config(hidden_size=3)
    optim = {"t": 3, "m/W_xh": rng.normal(size=(4, 3)), "v/W_xh": rng.normal(size=(4, 3))}
    state = [rng.normal(size=(2, 3)).astype(np.float32)]
    path = str(tmp_path / "c.npz")
    ckpt.save(path, params, vocab, {"config": config.to_dict(), "step": 7, "val_loss": 1.5}, optim, state)

    loaded = ckpt.load(path)
    assert loaded.vocab == vocab and loaded.path == path
    for k in params:
        assert loaded.params[k].dtype == np.float32
        np.testing.assert_array_equal(loaded.params[k], params[k])
    np.testing.assert_array_equal(loaded.optim["m/W_xh"], optim["m/W_xh"])
    np.testing.assert_array_equal(loaded.state[0], state[0])
    assert loaded.meta["step"] == 7 and loaded.meta["val_loss"] == 1.5
    assert loaded.meta["format"] == ckpt.FORMAT and loaded.meta["charrnn_version"] == __version__
    assert loaded.config == config
    model = loaded.model()
    assert model.V == 4 and model.H == 3


def test_trained_checkpoint_reads_with_numpy_alone(trained_ckpt):
    with np.load(trained_ckpt, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    meta = json.loads(str(arrays["meta"]))
    V, H = len(arrays["vocab"]), meta["config"]["hidden_size"]
    assert V == len(set(TINY_TEXT)) and H == 16
    expected = {"W_xh": (V, H), "W_hh": (H, H), "b_h": (H,), "W_hy": (H, V), "b_y": (V,)}
    for name, shape in expected.items():
        assert arrays[f"param/{name}"].shape == shape, name
    assert sorted(k for k in arrays if k.startswith("param/")) == sorted(f"param/{k}" for k in expected)
    assert arrays["vocab"].dtype == np.int32
    assert "".join(map(chr, arrays["vocab"])) == "".join(sorted(set(TINY_TEXT)))
    for key in ("format", "charrnn_version", "config", "step", "epoch", "train_loss", "val_loss", "best_val_loss"):
        assert key in meta, key
    assert meta["step"] == 60 or meta["val_loss"] == meta["best_val_loss"]

    # The documented equations, with nothing but numpy, give the library's prediction.
    p = {k: arrays[f"param/{k}"] for k in expected}
    chars = "".join(map(chr, arrays["vocab"]))
    h = np.zeros(H, dtype=np.float32)
    for ch in "ROMEO":
        h = np.tanh(p["W_xh"][chars.index(ch)] + h @ p["W_hh"] + p["b_h"])
    y = h @ p["W_hy"] + p["b_y"]
    model = ckpt.load(trained_ckpt).model()
    state = model.zero_state(1)
    for ch in "ROMEO":
        logits, state = model.step(np.array([chars.index(ch)]), state)
    np.testing.assert_allclose(logits[0], y, rtol=1e-5, atol=1e-6)


def test_best_and_latest(tmp_path):
    events = []
    out = tmp_path / "run"
    train(tiny_config(max_steps=60, eval_every=10), text=TINY_TEXT, out=str(out), callback=events.append)
    evals = [e for e in events if e["kind"] == "eval"]
    improved = [e for e in evals if e["best"]]
    assert len(evals) == 6 and improved and improved[0]["step"] == 10

    best, latest = ckpt.load(str(out / "best.npz")), ckpt.load(str(out / "latest.npz"))
    assert best.meta["step"] == improved[-1]["step"]
    assert best.meta["val_loss"] == best.meta["best_val_loss"] == min(e["val_loss"] for e in evals)
    assert latest.meta["step"] == 60 and latest.meta["best_val_loss"] == best.meta["val_loss"]
    saves = [e["step"] for e in events if e["kind"] == "save"]
    assert saves == [20, 40, 60]  # every save_every steps and at the end
    assert ckpt.find(str(out)) == str(out / "best.npz")


def test_find_falls_back_to_latest(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        ckpt.find(str(tmp_path))
    train(tiny_config(max_steps=3, val_fraction=0), text=TINY_TEXT, out=str(tmp_path))
    assert ckpt.find(str(tmp_path)) == str(tmp_path / "latest.npz")


def test_no_temporary_files_left(trained_dir):
    assert sorted(os.listdir(trained_dir)) == ["best.npz", "latest.npz", "metrics.jsonl"]


def test_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    vocab = Vocab.from_text("abcd")
    meta = {"config": tiny_config(hidden_size=3).to_dict()}
    path = tmp_path / "latest.npz"
    ckpt.save(str(path), small_params(rng), vocab, meta)
    before = path.read_bytes()

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError):
        ckpt.save(str(path), small_params(rng), vocab, meta)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["latest.npz"]


def test_stale_temporary_files_are_cleaned(tmp_path):
    stale = tmp_path / (ckpt.TMP_PREFIX + "latest.npz.abc123")
    stale.write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("mine")
    assert ckpt.clean_stale(str(tmp_path)) == [stale.name]
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_checkpoint_mode_follows_umask(tmp_path):
    """A checkpoint is an ordinary file (0644 under umask 022), not a private temporary one."""
    old = os.umask(0o022)
    try:
        rng = np.random.default_rng(2)
        path = tmp_path / "c.npz"
        ckpt.save(str(path), small_params(rng), Vocab.from_text("abcd"),
                  {"config": tiny_config(hidden_size=3).to_dict()})
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_force_leaves_no_best_of_an_earlier_run(tmp_path):
    """After `train --force` without validation, sample/eval must not pick up the old best.npz."""
    out = str(tmp_path / "run")
    train(tiny_config(max_steps=20), text=TINY_TEXT, out=out)
    assert os.path.exists(os.path.join(out, "best.npz"))
    new_text = TINY_TEXT.upper()
    train(tiny_config(max_steps=5, val_fraction=0), text=new_text, out=out, force=True)
    found = ckpt.load(ckpt.find(out))
    assert found.vocab == Vocab.from_text(new_text)
    assert sorted(os.listdir(out)) == ["latest.npz", "metrics.jsonl"]
