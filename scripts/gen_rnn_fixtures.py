#!/usr/bin/env python3
"""PyTorch reference values for d2l-rs's recurrent layers (nn.RNN, nn.GRU, nn.LSTM).

Writes ``crates/d2l-nn/tests/fixtures/rnn.json`` (committed; CI needs no Python):

    .venv/bin/python scripts/gen_rnn_fixtures.py

Each case holds the layer's settings (mode RNN_TANH, RNN_RELU, GRU or LSTM; input and
hidden size, layers, bidirectional, batch_first, bias), its parameters under PyTorch's
names, the input ``x`` and the initial state ``h0`` (and ``c0`` for an LSTM; both absent
for a zero state), all drawn from a fixed generator and rounded to 3 decimals. The
outputs ``out``, ``h_n`` (``c_n``) are computed in float64, and so are the gradients of
the scalar ``sum(out * w_out) + sum(h_n * w_h) [+ sum(c_n * w_c)]`` with respect to the
input, the initial state and every parameter. Values are rounded to 9 significant digits.
"""
import json
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "d2l-nn", "tests",
                   "fixtures", "rnn.json")


def draw(g, *shape, scale=1.0):
    return torch.round(torch.randn(*shape, generator=g) * scale * 1000) / 1000


def enc(t):
    return {"shape": list(t.shape), "data": [float(f"{v:.9g}") for v in t.flatten().tolist()]}


def case(g, name, mode, inp, hid, T=5, B=3, layers=1, bidir=False, batch_first=False,
         bias=True, state=True, weight_scale=0.5):
    cls = {"RNN_TANH": torch.nn.RNN, "RNN_RELU": torch.nn.RNN, "GRU": torch.nn.GRU,
           "LSTM": torch.nn.LSTM}[mode]
    kw = dict(num_layers=layers, bidirectional=bidir, batch_first=batch_first, bias=bias)
    if mode == "RNN_RELU":
        kw["nonlinearity"] = "relu"
    net = cls(inp, hid, **kw).double()
    params = {}
    with torch.no_grad():
        for n, p in net.named_parameters():
            p.copy_(draw(g, *p.shape, scale=weight_scale))
            params[n] = p
    dirs = 2 if bidir else 1
    x = draw(g, *((B, T, inp) if batch_first else (T, B, inp))).double().requires_grad_(True)
    h0 = c0 = None
    if state:
        h0 = draw(g, layers * dirs, B, hid).double().requires_grad_(True)
        if mode == "LSTM":
            c0 = draw(g, layers * dirs, B, hid).double().requires_grad_(True)
    if mode == "LSTM":
        out, (h_n, c_n) = net(x, (h0, c0) if state else None)
    else:
        out, h_n = net(x, h0 if state else None)
        c_n = None
    w_out = draw(g, *out.shape).double()
    w_h = draw(g, *h_n.shape).double()
    loss = (out * w_out).sum() + (h_n * w_h).sum()
    w_c = None
    if c_n is not None:
        w_c = draw(g, *c_n.shape).double()
        loss = loss + (c_n * w_c).sum()
    loss.backward()
    c = {
        "name": name, "mode": mode, "input_size": inp, "hidden_size": hid,
        "num_layers": layers, "bidirectional": bidir, "batch_first": batch_first,
        "bias": bias,
        "params": {n: enc(p.detach()) for n, p in params.items()},
        "x": enc(x.detach()),
        "out": enc(out.detach()), "h_n": enc(h_n.detach()),
        "w_out": enc(w_out), "w_h": enc(w_h),
        "grads": {"x": enc(x.grad)},
    }
    if state:
        c["h0"] = enc(h0.detach())
        c["grads"]["h0"] = enc(h0.grad)
        if c0 is not None:
            c["c0"] = enc(c0.detach())
            c["grads"]["c0"] = enc(c0.grad)
    if c_n is not None:
        c["c_n"] = enc(c_n.detach())
        c["w_c"] = enc(w_c)
    for n, p in params.items():
        c["grads"][n] = enc(p.grad)
    return c


def main():
    g = torch.Generator().manual_seed(0)
    cases = [
        case(g, "rnn_tanh", "RNN_TANH", 3, 4),
        case(g, "rnn_relu", "RNN_RELU", 3, 4),
        case(g, "rnn_tanh_zero_state", "RNN_TANH", 3, 4, state=False),
        case(g, "gru", "GRU", 3, 4),
        case(g, "gru_no_bias", "GRU", 3, 4, bias=False),
        case(g, "lstm", "LSTM", 3, 4),
        case(g, "lstm_zero_state", "LSTM", 3, 4, state=False),
        case(g, "rnn_2layer_bidir", "RNN_TANH", 3, 4, layers=2, bidir=True),
        case(g, "gru_2layer_bidir_batch_first", "GRU", 3, 5, layers=2, bidir=True,
             batch_first=True),
        case(g, "lstm_2layer_bidir_batch_first", "LSTM", 3, 4, layers=2, bidir=True,
             batch_first=True),
        case(g, "lstm_3layer", "LSTM", 2, 3, T=4, B=2, layers=3),
        case(g, "gru_single_step", "GRU", 3, 4, T=1, B=1),
    ]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"generator": "scripts/gen_rnn_fixtures.py", "torch": torch.__version__,
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(cases)} cases to {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
