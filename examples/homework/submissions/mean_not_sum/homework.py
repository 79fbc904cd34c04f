"""Mistake: db averages over the batch where the bias gradient sums."""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def circuit_grad(x, y, z):
    q = x + y
    return {"x": z, "y": z, "z": q}


def neuron_grad(w0, x0, w1, x1, w2):
    out = sigmoid(w0 * x0 + w1 * x1 + w2)
    da = out * (1 - out)
    return {"w0": da * x0, "x0": da * w0, "w1": da * x1, "x1": da * w1, "w2": da}


def neuron_forward(w0, x0, w1, x1, w2):
    out = sigmoid(w0 * x0 + w1 * x1 + w2)
    return out, (w0, x0, w1, x1, out)


def neuron_backward(dout, cache):
    w0, x0, w1, x1, out = cache
    da = dout * out * (1 - out)
    return da * x0, da * w0, da * x1, da * w1, da


def ridge_grad(w, b, x, y, lam):
    err = w * x + b - y
    return {"w": err * x + lam * w, "b": err}


def sigmoid_layer_forward(X, b):
    out = sigmoid(X + b)
    return out, out


def sigmoid_layer_backward(dout, cache):
    out = cache
    da = dout * out * (1 - out)
    return da, da.mean(axis=0)


def affine_forward(X, W, b):
    return X @ W + b, (X, W)


def affine_backward(dout, cache):
    X, W = cache
    return dout @ W.T, X.T @ dout, dout.sum(axis=0)


def softmax_loss_grad(W, X, y, reg):
    N = X.shape[0]
    scores = X @ W
    P = np.exp(scores - scores.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    P[np.arange(N), y] -= 1
    return X.T @ P / N + 2 * reg * W
