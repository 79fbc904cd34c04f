"""symgrad: derive gradients the way backpropagation is taught, then make them fast."""

from . import homework
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
from .graph import Graph, graph
from .interpret import Trace
from .ops import OPS
from .tracing import (
    absolute,
    cos,
    exp,
    log,
    maximum,
    minimum,
    relu,
    sigmoid,
    sin,
    softplus,
    sqrt,
    tanh,
)

abs = absolute
max = maximum
min = minimum

__version__ = "0.1.0"

__all__ = [
    "OPS", "EvaluationError", "FusionError", "Graph", "InputError", "ParseError", "ShapeError",
    "SymgradError", "Trace", "TracingError", "UnsupportedError", "abs", "absolute", "cos", "exp",
    "graph", "homework", "log", "max", "maximum", "min", "minimum", "relu", "sigmoid", "sin", "softplus",
    "sqrt", "tanh",
]
