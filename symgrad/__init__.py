"""symgrad: derive gradients the way backpropagation is taught, then make them fast.

The public names are loaded on first use (as the Scientific Python lazy-loading
standard, SPEC 1, describes): ``import symgrad`` loads none of SymPy, NumPy or
networkx, and ``sg.graph`` imports what building a graph needs.  :data:`_LAZY`
says where each name lives; the ``TYPE_CHECKING`` block below repeats it as
imports, so type checkers and editors see every name with its type
(``tests/test_startup.py`` checks that the two agree).
"""

from __future__ import annotations

import importlib
import sys
import types

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from typing import Any

    from . import homework
    from .check import EdgeCheck, GradCheck, InputCheck, LocalCheck, check_grad, check_local
    from .codegen import codegen
    from .compiled import Compiled
    from .composed import (
        binary_cross_entropy,
        l2,
        log_softmax,
        norm,
        softmax,
        softmax_cross_entropy,
        svm_loss,
    )
    from .define import DefinedOp, define_op, undefine_op
    from .errors import (
        EvaluationError,
        FusionError,
        InputError,
        ParseError,
        ShapeError,
        SymgradError,
        TracingError,
        UnsupportedError,
    )
    from .explain import Explanation, explain
    from .frontends import graph
    from .fusion import Finding
    from .gates import PATTERNS, Pattern
    from .graph import Graph
    from .higher import Derivative, grad, hessian, hvp, jacobian, jvp
    from .interpret import Trace
    from .notation import HessianNotation, MatrixNotation, hessian_notation, matrix_notation
    from .ops import OPS
    from .picture import render
    from .player import Player, player
    from .tracing import (
        absolute,
        amax,
        amin,
        cos,
        exp,
        log,
        logaddexp,
        logsigmoid,
        logsumexp,
        matmul,
        matrix_transpose,
        maximum,
        mean,
        minimum,
        pick,
        reduce_sum,
        relu,
        reshape,
        sigmoid,
        sin,
        softplus,
        sqrt,
        swapaxes,
        tanh,
        transpose,
    )
    from .tracing import absolute as abs
    from .tracing import max_ as max
    from .tracing import min_ as min
    from .tracing import reduce_sum as sum

__version__ = "0.1.0"

__all__ = [
    "OPS", "EvaluationError", "FusionError", "Graph", "InputError", "ParseError", "ShapeError",
    "SymgradError", "Trace", "TracingError", "UnsupportedError", "abs", "absolute", "cos", "exp",
    "graph", "homework", "log", "max", "maximum", "min", "minimum", "relu", "sigmoid", "sin", "softplus",
    "sqrt", "tanh",
    "Explanation", "explain", "render",
    # tensors
    "binary_cross_entropy", "l2", "log_softmax", "logsumexp", "matmul", "mean", "norm", "pick",
    "reduce_sum", "softmax", "softmax_cross_entropy", "sum", "svm_loss", "transpose",
    # compiled code and checks
    "Compiled", "EdgeCheck", "GradCheck", "InputCheck", "LocalCheck", "check_grad", "check_local",
    "codegen",
]
__all__ += ["Finding", "PATTERNS", "Pattern", "logaddexp", "logsigmoid"]
__all__ += ["amax", "amin", "matrix_transpose", "reshape", "swapaxes"]
__all__ += ["DefinedOp", "define_op", "undefine_op"]
__all__ += ["Player", "player"]

__all__ += ["Derivative", "MatrixNotation", "grad", "hessian", "hvp", "jacobian", "jvp",
            "matrix_notation", "HessianNotation", "hessian_notation"]

# each public name: the module that defines it, and its name there ("" for the module itself)
_WHERE = {
    "check": "EdgeCheck GradCheck InputCheck LocalCheck check_grad check_local",
    "codegen": "codegen",
    "compiled": "Compiled",
    "define": "DefinedOp define_op undefine_op",
    "composed": "binary_cross_entropy l2 log_softmax norm softmax softmax_cross_entropy svm_loss",
    "errors": "EvaluationError FusionError InputError ParseError ShapeError SymgradError TracingError "
              "UnsupportedError",
    "explain": "Explanation explain",
    "frontends": "graph",
    "fusion": "Finding",
    "gates": "PATTERNS Pattern",
    "graph": "Graph",
    "higher": "Derivative grad hessian hvp jacobian jvp",
    "interpret": "Trace",
    "notation": "HessianNotation MatrixNotation hessian_notation matrix_notation",
    "ops": "OPS",
    "picture": "render",
    "player": "Player player",
    "tracing": "absolute amax amin cos exp log logaddexp logsigmoid logsumexp matmul matrix_transpose max_ "
               "maximum mean min_ minimum pick reduce_sum relu reshape sigmoid sin softplus sqrt swapaxes "
               "tanh transpose",
}
_LAZY = {name: (module, name) for module, names in _WHERE.items() for name in names.split()}
_LAZY.update(abs=("tracing", "absolute"), max=("tracing", "max_"), min=("tracing", "min_"),
             sum=("tracing", "reduce_sum"), homework=("homework", ""))


def __getattr__(name: str) -> Any:
    """A public name, imported on first use (``sg.homework``, the homework checker, too)."""
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attribute = _LAZY[name]
    found = importlib.import_module(f".{module}", __name__)
    value = getattr(found, attribute) if attribute else found
    globals()[name] = value  # later uses find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(types.ModuleType):
    """The package's module type: a submodule's import does not take a public name.

    Importing ``symgrad.graph`` (the module) binds it on the package as
    ``graph``, where the public function ``sg.graph`` belongs; so do
    ``symgrad.codegen``, ``symgrad.explain`` and ``symgrad.player``.  The
    function keeps the name (it is loaded on first use), as it did when the
    package imported everything at once.
    """

    def __setattr__(self, name: str, value: object) -> None:
        if isinstance(value, types.ModuleType) and _LAZY.get(name, ("", ""))[1]:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
