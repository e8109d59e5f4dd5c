#!/usr/bin/env python3
"""LSTM and GRU forward passes against torch.nn.LSTM / nn.GRU on the same weights (2 layers, float64).

Run with a Python that has torch (never a charrnn dependency):
    /path/to/torch-python bench/cell_parity_torch.py
Prints the two losses per cell; they agree to float64 rounding. Our LSTM gate order i, f, o, g is
permuted to torch's i, f, g, o; our GRU's b_hn is torch's bias_hh_l*[2H:].
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # this checkout's charrnn
from charrnn.model import Model

V, H, T, B = 7, 5, 6, 3
rng = np.random.default_rng(0)
ids = rng.integers(0, V, (T, B))
for cell in ("gru", "lstm"):
    m = Model(V, H, cell=cell, dtype="float64", layers=2).init(1)
    for p in m.params.values():
        p += rng.normal(0, 0.5, p.shape)
    tm = (torch.nn.GRU if cell == "gru" else torch.nn.LSTM)(V, H, num_layers=2).double()
    G = 3 if cell == "gru" else 4
    order = np.arange(G * H)
    if cell == "lstm":  # ours i,f,o,g -> torch i,f,g,o
        order = np.concatenate([np.arange(0, 2 * H), np.arange(3 * H, 4 * H), np.arange(2 * H, 3 * H)])
    with torch.no_grad():
        for l, s in ((0, ""), (1, ".1")):
            getattr(tm, f"weight_ih_l{l}").copy_(torch.from_numpy(m.params["W_x" + s][:, order].T))
            getattr(tm, f"weight_hh_l{l}").copy_(torch.from_numpy(m.params["W_h" + s][:, order].T))
            getattr(tm, f"bias_ih_l{l}").copy_(torch.from_numpy(m.params["b" + s][order]))
            bh = np.zeros(G * H)
            if cell == "gru":
                bh[2 * H:] = m.params["b_hn" + s]
            getattr(tm, f"bias_hh_l{l}").copy_(torch.from_numpy(bh))
        x = torch.nn.functional.one_hot(torch.from_numpy(ids), V).double()
        out, _ = tm(x)
        logits = out.numpy() @ m.params["W_hy"] + m.params["b_y"]
    z = logits - logits.max(-1, keepdims=True)
    lp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    y = rng.integers(0, V, (T, B))
    torch_loss = -np.mean(np.take_along_axis(lp, y[..., None], -1))
    ours, _ = m.forward(ids, y, m.zero_state(B))
    print(cell, "torch", torch_loss, "ours", ours, "diff", abs(torch_loss - ours))
