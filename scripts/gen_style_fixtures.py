"""Writes crates/d2l-vision/tests/fixtures/style/losses.txt: reference values and input
gradients of D2L 13.12's style-transfer losses, computed with PyTorch exactly as the book
writes them (content_loss, gram, style_loss, tv_loss, compute_loss with its list quirk).

Run: /work/main/.venv/bin/python scripts/gen_style_fixtures.py

Format, one tensor per line:  `name d0,d1,... v0 v1 ...`  (a scalar has shape `-`).
Inputs are float32 values (printed exactly with %.9g); every reference is computed in
float64 from those values and printed with %.12g.
"""
import os

import torch

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "d2l-vision", "tests",
                   "fixtures", "style", "losses.txt")


# ---- the book's code (D2L 13.12), verbatim apart from the argument of compute_loss
def content_loss(Y_hat, Y):
    return torch.square(Y_hat - Y.detach()).mean()


def gram(X):
    num_channels, n = X.shape[1], X.numel() // X.shape[1]
    X = X.reshape((num_channels, n))
    return torch.matmul(X, X.T) / (num_channels * n)


def style_loss(Y_hat, gram_Y):
    return torch.square(gram(Y_hat) - gram_Y.detach()).mean()


def tv_loss(Y_hat):
    return 0.5 * (torch.abs(Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).mean() +
                  torch.abs(Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).mean())


content_weight, style_weight, tv_weight = 1, 1e3, 10


def compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram):
    contents_l = [content_loss(Y_hat, Y) * content_weight for Y_hat, Y in zip(
        contents_Y_hat, contents_Y)]
    styles_l = [style_loss(Y_hat, Y) * style_weight for Y_hat, Y in zip(
        styles_Y_hat, styles_Y_gram)]
    tv_l = tv_loss(X) * tv_weight
    # The book's line: a Python list repetition, so styles_l appears 10 times.
    l = sum(10 * styles_l + contents_l + [tv_l])
    return contents_l, styles_l, tv_l, l


# ---- fixture writing
lines = []


def put(name, t):
    t = t.detach()
    shape = "-" if t.dim() == 0 else ",".join(str(d) for d in t.shape)
    fmt = "%.9g" if t.dtype == torch.float32 else "%.12g"
    vals = " ".join(fmt % v for v in t.reshape(-1).tolist())
    lines.append(f"{name} {shape} {vals}")


def leaf(t):
    """A float64 leaf holding the float32 values of t (what the Rust test reads)."""
    return t.to(torch.float64).detach().requires_grad_(True)


torch.manual_seed(1312)
shape = (1, 4, 6, 5)
y_hat32 = torch.randn(shape)
y32 = torch.randn(shape)
s32 = torch.randn(shape)  # the style target's features
w32 = torch.randn(4, 4)  # weights of gram's gradient check
put("y_hat", y_hat32)
put("y", y32)
put("s", s32)
put("w", w32)

# content_loss
a = leaf(y_hat32)
l = content_loss(a, leaf(y32))
l.backward()
put("content_loss", l)
put("content_loss_grad", a.grad)

# gram, and the gradient of sum(gram * w)
a = leaf(y_hat32)
g = gram(a)
(g * w32.to(torch.float64)).sum().backward()
put("gram", g)
put("gram_grad", a.grad)

# style_loss against gram(s)
gram_s = gram(s32.to(torch.float64))
put("gram_s", gram_s)
a = leaf(y_hat32)
l = style_loss(a, gram_s)
l.backward()
put("style_loss", l)
put("style_loss_grad", a.grad)

# tv_loss
a = leaf(y_hat32)
l = tv_loss(a)
l.backward()
put("tv_loss", l)
put("tv_loss_grad", a.grad)

# compute_loss with the book's quirk: X = y_hat, one content layer (y_hat vs y), two style
# layers (y_hat and 0.5*y_hat + y against gram(s) and gram(y)).
a = leaf(y_hat32)
yy = y32.to(torch.float64)
contents_Y_hat = [a]
styles_Y_hat = [a, 0.5 * a + yy]
contents_Y = [yy]
styles_Y_gram = [gram_s, gram(yy)]
cl, sl, tl, total = compute_loss(a, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram)
total.backward()
put("book_contents_l", torch.stack(cl))
put("book_styles_l", torch.stack(sl))
put("book_tv_l", tl)
put("book_total", total)
put("book_total_grad", a.grad)

header = ("# D2L 13.12 style-transfer losses, torch %s; written by scripts/gen_style_fixtures.py"
          % torch.__version__)
os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "w") as f:
    f.write(header + "\n" + "\n".join(lines) + "\n")
print(OUT, os.path.getsize(OUT), "bytes")
