"""symgrad: derive gradients the way backpropagation is taught, then make them fast."""

from typing import Any

from .check import EdgeCheck, GradCheck, InputCheck, LocalCheck, check_grad, check_local
from .codegen import Compiled, codegen
from .define import DefinedOp, define_op, undefine_op
from .derived import (
    binary_cross_entropy,
    l2,
    log_softmax,
    norm,
    softmax,
    softmax_cross_entropy,
    svm_loss,
)
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
    max_,
    maximum,
    mean,
    min_,
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

abs = absolute
max = max_
min = min_
sum = reduce_sum

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


def __getattr__(name: str) -> Any:
    """``sg.homework``, imported on first use: ``import symgrad`` stays quick."""
    if name == "homework":
        import importlib

        return importlib.import_module(".homework", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
