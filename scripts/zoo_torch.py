"""PyTorch definitions of the D2L chapter 6-7 CNNs, as the book's code writes them
(d2l-zh v2, PyTorch tab: lenet.md, alexnet.md, vgg.md, nin.md, googlenet.md,
batch-norm.md, resnet.md, densenet.md), parametrised like d2l-rs's zoo
(``crates/d2l-models/src/cnn.rs``) so both build the same network for any config:

* ``width`` multiplies every hidden width (conv channels, hidden Linear units, Inception
  path widths, DenseNet's growth rate), rounded half away from zero and at least 1 --
  Rust's ``BuildConfig::hidden``. 1.0 is the book's network.
* ``in_shape`` is ``(C, H, W)``; the first Linear of LeNet / AlexNet / VGG is sized from
  it (the book hard-codes 16*5*5, 6400 and c*7*7 for its inputs).
* ``num_outputs`` is the number of classes (10).

The state_dict keys are the book's module names, which are also d2l-rs's parameter
names, so a file saved from here loads by name into the Rust model. One deliberate
difference from the book: the from-scratch ``BatchNorm`` (7.5) registers
``moving_mean`` / ``moving_var`` as buffers (the book keeps them as plain attributes,
outside the state_dict), as d2l-rs does.

Used by ``scripts/gen_zoo_fixtures.py`` (the forward-parity fixtures) and
``scripts/bench_torch_zoo.py`` (training / inference images/s).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F


def hidden(base, width):
    """``base * width`` rounded half away from zero, at least 1 (Rust's ``f64::round``)."""
    return max(1, int(math.floor(base * width + 0.5)))


def window_out(n, k, s, p):
    return (n + 2 * p - k) // s + 1


def init_ch6(net):
    """``train_ch6``'s init: Xavier-uniform on every Linear and Conv2d weight."""
    def init_weights(m):
        if type(m) == nn.Linear or type(m) == nn.Conv2d:
            nn.init.xavier_uniform_(m.weight)
    net.apply(init_weights)
    return net


# ------------------------------------------------------------------------------- 6.6
def lenet(in_shape=(1, 28, 28), num_outputs=10, width=1.0, relu_max=False):
    c, h, w = in_shape
    for k, s, p in [(5, 1, 2), (2, 2, 0), (5, 1, 0), (2, 2, 0)]:
        h, w = window_out(h, k, s, p), window_out(w, k, s, p)
    c1, c2, f1, f2 = (hidden(b, width) for b in (6, 16, 120, 84))
    act = nn.ReLU if relu_max else nn.Sigmoid
    pool = (lambda: nn.MaxPool2d(kernel_size=2, stride=2)) if relu_max else \
        (lambda: nn.AvgPool2d(kernel_size=2, stride=2))
    return nn.Sequential(
        nn.Conv2d(c, c1, kernel_size=5, padding=2), act(),
        pool(),
        nn.Conv2d(c1, c2, kernel_size=5), act(),
        pool(),
        nn.Flatten(),
        nn.Linear(c2 * h * w, f1), act(),
        nn.Linear(f1, f2), act(),
        nn.Linear(f2, num_outputs))


# ------------------------------------------------------------------------------- 7.1
def alexnet(in_shape=(1, 224, 224), num_outputs=10, width=1.0, dropout=0.5):
    c, h, w = in_shape
    for k, s, p in [(11, 4, 1), (3, 2, 0), (5, 1, 2), (3, 2, 0), (3, 1, 1), (3, 1, 1),
                    (3, 1, 1), (3, 2, 0)]:
        h, w = window_out(h, k, s, p), window_out(w, k, s, p)
    ch = [hidden(b, width) for b in (96, 256, 384, 384, 256)]
    fc = hidden(4096, width)
    return nn.Sequential(
        nn.Conv2d(c, ch[0], kernel_size=11, stride=4, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(ch[0], ch[1], kernel_size=5, padding=2), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(ch[1], ch[2], kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(ch[2], ch[3], kernel_size=3, padding=1), nn.ReLU(),
        nn.Conv2d(ch[3], ch[4], kernel_size=3, padding=1), nn.ReLU(),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Flatten(),
        nn.Linear(ch[4] * h * w, fc), nn.ReLU(), nn.Dropout(p=dropout),
        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(p=dropout),
        nn.Linear(fc, num_outputs))


# ------------------------------------------------------------------------------- 7.2
VGG11_ARCH = ((1, 64), (1, 128), (2, 256), (2, 512), (2, 512))


def vgg_block(num_convs, in_channels, out_channels):
    layers = []
    for _ in range(num_convs):
        layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
        layers.append(nn.ReLU())
        in_channels = out_channels
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return nn.Sequential(*layers)


def vgg(conv_arch, in_shape=(1, 224, 224), num_outputs=10, width=1.0, dropout=0.5):
    c, h, w = in_shape
    conv_blks = []
    in_channels = c
    for (num_convs, out_channels) in conv_arch:
        out_channels = hidden(out_channels, width)
        conv_blks.append(vgg_block(num_convs, in_channels, out_channels))
        in_channels = out_channels
        h, w = h // 2, w // 2
    fc = hidden(4096, width)
    return nn.Sequential(
        *conv_blks, nn.Flatten(),
        nn.Linear(in_channels * h * w, fc), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(fc, fc), nn.ReLU(), nn.Dropout(dropout),
        nn.Linear(fc, num_outputs))


def vgg11(ratio=4, **kw):
    small_conv_arch = [(pair[0], pair[1] // ratio) for pair in VGG11_ARCH]
    return vgg(small_conv_arch, **kw)


# ------------------------------------------------------------------------------- 7.3
def nin_block(in_channels, out_channels, kernel_size, strides, padding):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, strides, padding),
        nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU(),
        nn.Conv2d(out_channels, out_channels, kernel_size=1), nn.ReLU())


def nin(in_shape=(1, 224, 224), num_outputs=10, width=1.0, dropout=0.5):
    c = in_shape[0]
    ch = [hidden(b, width) for b in (96, 256, 384)]
    return nn.Sequential(
        nin_block(c, ch[0], kernel_size=11, strides=4, padding=0),
        nn.MaxPool2d(3, stride=2),
        nin_block(ch[0], ch[1], kernel_size=5, strides=1, padding=2),
        nn.MaxPool2d(3, stride=2),
        nin_block(ch[1], ch[2], kernel_size=3, strides=1, padding=1),
        nn.MaxPool2d(3, stride=2),
        nn.Dropout(dropout),
        nin_block(ch[2], num_outputs, kernel_size=3, strides=1, padding=1),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten())


# ------------------------------------------------------------------------------- 7.4
class Inception(nn.Module):
    def __init__(self, in_channels, c1, c2, c3, c4, **kwargs):
        super(Inception, self).__init__(**kwargs)
        self.p1_1 = nn.Conv2d(in_channels, c1, kernel_size=1)
        self.p2_1 = nn.Conv2d(in_channels, c2[0], kernel_size=1)
        self.p2_2 = nn.Conv2d(c2[0], c2[1], kernel_size=3, padding=1)
        self.p3_1 = nn.Conv2d(in_channels, c3[0], kernel_size=1)
        self.p3_2 = nn.Conv2d(c3[0], c3[1], kernel_size=5, padding=2)
        self.p4_1 = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)
        self.p4_2 = nn.Conv2d(in_channels, c4, kernel_size=1)

    def forward(self, x):
        p1 = F.relu(self.p1_1(x))
        p2 = F.relu(self.p2_2(F.relu(self.p2_1(x))))
        p3 = F.relu(self.p3_2(F.relu(self.p3_1(x))))
        p4 = F.relu(self.p4_2(self.p4_1(x)))
        return torch.cat((p1, p2, p3, p4), dim=1)


INCEPTIONS = [
    (64, (96, 128), (16, 32), 32),
    (128, (128, 192), (32, 96), 64),
    (192, (96, 208), (16, 48), 64),
    (160, (112, 224), (24, 64), 64),
    (128, (128, 256), (24, 64), 64),
    (112, (144, 288), (32, 64), 64),
    (256, (160, 320), (32, 128), 128),
    (256, (160, 320), (32, 128), 128),
    (384, (192, 384), (48, 128), 128),
]


def googlenet(in_shape=(1, 96, 96), num_outputs=10, width=1.0):
    c = in_shape[0]
    hw = lambda b: hidden(b, width)
    b1 = nn.Sequential(nn.Conv2d(c, hw(64), kernel_size=7, stride=2, padding=3),
                       nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(nn.Conv2d(hw(64), hw(64), kernel_size=1),
                       nn.ReLU(),
                       nn.Conv2d(hw(64), hw(192), kernel_size=3, padding=1),
                       nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    state = {"in": hw(192)}

    def inc(i):
        c1, (c2a, c2b), (c3a, c3b), c4 = INCEPTIONS[i]
        c1, c2a, c2b, c3a, c3b, c4 = (hw(v) for v in (c1, c2a, c2b, c3a, c3b, c4))
        blk = Inception(state["in"], c1, (c2a, c2b), (c3a, c3b), c4)
        state["in"] = c1 + c2b + c3b + c4
        return blk

    b3 = nn.Sequential(inc(0), inc(1), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b4 = nn.Sequential(inc(2), inc(3), inc(4), inc(5), inc(6),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b5 = nn.Sequential(inc(7), inc(8), nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten())
    return nn.Sequential(b1, b2, b3, b4, b5, nn.Linear(state["in"], num_outputs))


# ------------------------------------------------------------------------------- 7.5
def batch_norm(X, gamma, beta, moving_mean, moving_var, eps, momentum):
    # The book's function, verbatim: the train/eval switch is torch.is_grad_enabled().
    if not torch.is_grad_enabled():
        X_hat = (X - moving_mean) / torch.sqrt(moving_var + eps)
    else:
        assert len(X.shape) in (2, 4)
        if len(X.shape) == 2:
            mean = X.mean(dim=0)
            var = ((X - mean) ** 2).mean(dim=0)
        else:
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        X_hat = (X - mean) / torch.sqrt(var + eps)
        moving_mean = momentum * moving_mean + (1.0 - momentum) * mean
        moving_var = momentum * moving_var + (1.0 - momentum) * var
    Y = gamma * X_hat + beta
    return Y, moving_mean.data, moving_var.data


class BatchNorm(nn.Module):
    def __init__(self, num_features, num_dims):
        super().__init__()
        if num_dims == 2:
            shape = (1, num_features)
        else:
            shape = (1, num_features, 1, 1)
        self.gamma = nn.Parameter(torch.ones(shape))
        self.beta = nn.Parameter(torch.zeros(shape))
        # d2l-rs difference: buffers (the book: plain attributes, not in the state_dict).
        self.register_buffer("moving_mean", torch.zeros(shape))
        self.register_buffer("moving_var", torch.ones(shape))

    def forward(self, X):
        Y, mm, mv = batch_norm(
            X, self.gamma, self.beta, self.moving_mean,
            self.moving_var, eps=1e-5, momentum=0.9)
        self.moving_mean.copy_(mm.reshape(self.moving_mean.shape))
        self.moving_var.copy_(mv.reshape(self.moving_var.shape))
        return Y


def lenet_bn(in_shape=(1, 28, 28), num_outputs=10, width=1.0, scratch=False):
    c, h, w = in_shape
    for k, s, p in [(5, 1, 0), (2, 2, 0), (5, 1, 0), (2, 2, 0)]:
        h, w = window_out(h, k, s, p), window_out(w, k, s, p)
    c1, c2, f1, f2 = (hidden(b, width) for b in (6, 16, 120, 84))
    bn4 = (lambda n: BatchNorm(n, num_dims=4)) if scratch else nn.BatchNorm2d
    bn2 = (lambda n: BatchNorm(n, num_dims=2)) if scratch else nn.BatchNorm1d
    return nn.Sequential(
        nn.Conv2d(c, c1, kernel_size=5), bn4(c1), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2),
        nn.Conv2d(c1, c2, kernel_size=5), bn4(c2), nn.Sigmoid(),
        nn.AvgPool2d(kernel_size=2, stride=2), nn.Flatten(),
        nn.Linear(c2 * h * w, f1), bn2(f1), nn.Sigmoid(),
        nn.Linear(f1, f2), bn2(f2), nn.Sigmoid(),
        nn.Linear(f2, num_outputs))


# ------------------------------------------------------------------------------- 7.6
class Residual(nn.Module):
    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1,
                               stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1,
                                   stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


def stem(c, out):
    return nn.Sequential(nn.Conv2d(c, out, kernel_size=7, stride=2, padding=3),
                         nn.BatchNorm2d(out), nn.ReLU(),
                         nn.MaxPool2d(kernel_size=3, stride=2, padding=1))


def resnet18(in_shape=(1, 96, 96), num_outputs=10, width=1.0):
    c = in_shape[0]
    ch = [hidden(b, width) for b in (64, 128, 256, 512)]
    b1 = stem(c, ch[0])
    b2 = nn.Sequential(*resnet_block(ch[0], ch[0], 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(ch[0], ch[1], 2))
    b4 = nn.Sequential(*resnet_block(ch[1], ch[2], 2))
    b5 = nn.Sequential(*resnet_block(ch[2], ch[3], 2))
    return nn.Sequential(b1, b2, b3, b4, b5,
                         nn.AdaptiveAvgPool2d((1, 1)),
                         nn.Flatten(), nn.Linear(ch[3], num_outputs))


# ------------------------------------------------------------------------------- 7.7
def conv_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1))


class DenseBlock(nn.Module):
    def __init__(self, num_convs, input_channels, num_channels):
        super(DenseBlock, self).__init__()
        layer = []
        for i in range(num_convs):
            layer.append(conv_block(num_channels * i + input_channels, num_channels))
        self.net = nn.Sequential(*layer)

    def forward(self, X):
        for blk in self.net:
            Y = blk(X)
            X = torch.cat((X, Y), dim=1)
        return X


def transition_block(input_channels, num_channels):
    return nn.Sequential(
        nn.BatchNorm2d(input_channels), nn.ReLU(),
        nn.Conv2d(input_channels, num_channels, kernel_size=1),
        nn.AvgPool2d(kernel_size=2, stride=2))


def densenet(in_shape=(1, 96, 96), num_outputs=10, width=1.0):
    c = in_shape[0]
    num_channels, growth_rate = hidden(64, width), hidden(32, width)
    b1 = stem(c, num_channels)
    num_convs_in_dense_blocks = [4, 4, 4, 4]
    blks = []
    for i, num_convs in enumerate(num_convs_in_dense_blocks):
        blks.append(DenseBlock(num_convs, num_channels, growth_rate))
        num_channels += num_convs * growth_rate
        if i != len(num_convs_in_dense_blocks) - 1:
            blks.append(transition_block(num_channels, max(1, num_channels // 2)))
            num_channels = max(1, num_channels // 2)
    return nn.Sequential(
        b1, *blks,
        nn.BatchNorm2d(num_channels), nn.ReLU(),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.Linear(num_channels, num_outputs))


# ------------------------------------------------------------------------------- zoo
def build(name, in_shape, num_outputs=10, width=1.0):
    """The zoo entry ``name`` (d2l-rs's names), Xavier-initialised as train_ch6 does."""
    kw = dict(in_shape=tuple(in_shape), num_outputs=num_outputs, width=width)
    makers = {
        "lenet": lambda: lenet(**kw),
        "lenet-relu-max": lambda: lenet(relu_max=True, **kw),
        "alexnet": lambda: alexnet(**kw),
        "vgg11": lambda: vgg11(4, **kw),
        "vgg11-full": lambda: vgg11(1, **kw),
        "nin": lambda: nin(**kw),
        "googlenet": lambda: googlenet(**kw),
        "lenet-bn-scratch": lambda: lenet_bn(scratch=True, **kw),
        "lenet-bn": lambda: lenet_bn(**kw),
        "resnet18": lambda: resnet18(**kw),
        "densenet": lambda: densenet(**kw),
    }
    return init_ch6(makers[name]())


# The book's recipe per model: (batch size, input side, lr) -- table B.2.
BOOK = {
    "lenet": (256, 28, 0.9),
    "lenet-relu-max": (256, 28, 0.1),
    "alexnet": (128, 224, 0.01),
    "vgg11": (128, 224, 0.05),
    "vgg11-full": (128, 224, 0.05),
    "nin": (128, 224, 0.1),
    "googlenet": (128, 96, 0.1),
    "lenet-bn-scratch": (256, 28, 1.0),
    "lenet-bn": (256, 28, 1.0),
    "resnet18": (256, 96, 0.05),
    "densenet": (256, 96, 0.1),
}
