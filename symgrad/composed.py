"""Functions made of primitive operations: norm, softmax and the losses.

Each is a short composition of ops from the op table, so its graph consists
of primitive nodes and its gradient follows from theirs: nothing here is
differentiated by hand.  They work on traced values (inside
``sg.graph(callable)``), on SymPy expressions, and by name in expression
strings (``"softmax_cross_entropy(X @ W, y)"``).

Labels (``y`` in the losses with integer labels) are inputs declared with
``dtypes={"y": int}``: one class index per row of the scores.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .ops import LABELS, POSITIVE, REAL, Domain
from .tracing import exp, log, logsumexp, mean, pick, reduce_sum, relu, sqrt


def norm(x: Any) -> Any:
    """The Euclidean (Frobenius) norm √(Σ x²).

    >>> import symgrad as sg
    >>> t = sg.graph("norm(x)", shapes={"x": (2,)}).backprop(x=[3.0, 4.0])
    >>> t.value, t.grads["x"]
    (5.0, array([0.6, 0.8]))
    """
    return sqrt(reduce_sum(x**2))


def log_softmax(x: Any, *, axis: int = -1) -> Any:
    """log softmax(x) = x − logsumexp(x) along ``axis``, without overflow.

    >>> import symgrad as sg
    >>> print(sg.graph("log_softmax(s)", shapes={"s": (2, 3)}))
    graph(s: 2×3): q2 = log_softmax(s)
      q1 = logsumexp(s, axis=1, keepdims=True)   [logsumexp(axis=1, keepdims)]   2×1
      q2 = s - q1                                [-]                             2×3
      return q2
    """
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x: Any, *, axis: int = -1) -> Any:
    """exp(x) / Σ exp(x) along ``axis`` (the classes), computed as exp(log_softmax(x)).

    >>> import symgrad as sg
    >>> sg.graph("softmax(s)", shapes={"s": (3,)}).backprop(s=[1000.0, 1000.0, 1000.0]).value
    array([0.33333333, 0.33333333, 0.33333333])
    """
    return exp(log_softmax(x, axis=axis))


def softmax_cross_entropy(scores: Any, labels: Any) -> Any:
    """Mean over the rows of −log softmax(scores)[i, labels[i]].

    Written as mean(logsumexp(s) − s[i, y_i]), which never overflows; its
    gradient with respect to the scores comes out as (softmax(s) − onehot(y)) / N.

    >>> import symgrad as sg
    >>> g = sg.graph("softmax_cross_entropy(s, y)", shapes={"s": (2, 2), "y": (2,)},
    ...              dtypes={"y": int})
    >>> t = g.backprop(s=[[0.0, 0.0], [0.0, 0.0]], y=[0, 1])
    >>> round(t.value, 4), t.grads["s"]
    (0.6931, array([[-0.25,  0.25],
           [ 0.25, -0.25]]))
    """
    return mean(logsumexp(scores, axis=-1) - pick(scores, labels))


def svm_loss(scores: Any, labels: Any) -> Any:
    """The multiclass SVM (hinge) loss: mean over rows of Σ_{j≠y_i} max(0, s_j − s_{y_i} + 1).

    The sum runs over every class, whose j = y_i term is max(0, 1) = 1, and
    that 1 is subtracted once; the gradient is unchanged by it.

    >>> import symgrad as sg
    >>> g = sg.graph("svm_loss(s, y)", shapes={"s": (1, 3), "y": (1,)}, dtypes={"y": int})
    >>> t = g.backprop(s=[[3.2, 5.1, -1.7]], y=[0])
    >>> round(t.value, 4), t.grads["s"]
    (2.9, array([[-1.,  1.,  0.]]))
    """
    margins = relu(scores - pick(scores, labels, keepdims=True) + 1)
    return mean(reduce_sum(margins, axis=-1)) - 1


def binary_cross_entropy(a: Any, y: Any) -> Any:
    """−mean(y·log(a) + (1 − y)·log(1 − a)) for probabilities ``a`` and targets ``y`` in [0, 1].

    >>> import symgrad as sg
    >>> g = sg.graph("binary_cross_entropy(sigmoid(z), y)", shapes={"z": (2,), "y": (2,)})
    >>> g.backprop(z=[0.0, 0.0], y=[1.0, 0.0]).grads["z"]   # (σ(z) − y) / m
    array([-0.25,  0.25])
    """
    return -mean(y * log(a) + (1 - y) * log(1 - a))


def l2(w: Any) -> Any:
    """Σ w², the L2 penalty (the lectures write ½·reg·Σ W² as ``0.5 * reg * l2(W)``).

    >>> import symgrad as sg
    >>> sg.graph("0.5 * l2(W)", shapes={"W": (2,)}).backprop(W=[1.0, -2.0]).grads["W"]
    array([ 1., -2.])
    """
    return reduce_sum(w**2)


@dataclass(frozen=True)
class Derived:
    """A derived function, with where tests may sample its operands (as in the op table)."""

    function: Callable[..., Any]
    domain: tuple[Domain, ...]
    shapes: tuple[tuple[str, ...], ...]

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def arity(self) -> int:
        return sum(p.kind == p.POSITIONAL_OR_KEYWORD for p in self._parameters())

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(p.name for p in self._parameters() if p.kind == p.KEYWORD_ONLY)

    def _parameters(self) -> list[inspect.Parameter]:
        return list(inspect.signature(self.function).parameters.values())


PROBABILITY = Domain(0.05, 0.95)
UNIT = Domain(0.0, 1.0)

COMPOSED: dict[str, Derived] = {
    d.name: d
    for d in (
        Derived(norm, (POSITIVE,), (("n",), ("nm",))),
        Derived(log_softmax, (REAL,), (("n",), ("nm",))),
        Derived(softmax, (REAL,), (("n",), ("nm",))),
        Derived(softmax_cross_entropy, (REAL, LABELS), (("nc", "n"),)),
        Derived(svm_loss, (REAL, LABELS), (("nc", "n"),)),
        Derived(binary_cross_entropy, (PROBABILITY, UNIT), (("n", "n"), ("nm", "nm"))),
        Derived(l2, (REAL,), (("n",), ("nm",))),
    )
}
