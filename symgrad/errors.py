"""Every error symgrad raises on bad input is a :class:`SymgradError`."""

from __future__ import annotations


class SymgradError(Exception):
    """Base class of every error symgrad raises on bad input."""


class ParseError(SymgradError):
    """An expression string that symgrad's parser does not accept.

    ``column`` is the 1-based column of the offending token, when known.
    """

    def __init__(self, message: str, column: int | None = None, text: str | None = None):
        self.column = column
        self.text = text
        if column is not None and text is not None and "\n" not in text and len(text) <= 200:
            message = f"{message}\n  {text}\n  {' ' * (column - 1)}^"
        elif column is not None:
            message = f"{message} (column {column})"
        super().__init__(message)


class UnsupportedError(SymgradError):
    """A function, construct or SymPy object that symgrad has no operation for."""


class TracingError(SymgradError):
    """A callable that cannot be traced into a graph."""


class InputError(SymgradError):
    """Missing, unknown or malformed input values."""


class ShapeError(SymgradError):
    """Shapes that do not fit an operation."""


class EvaluationError(SymgradError):
    """A number that cannot be computed: log of a negative, division by zero, overflow."""


class FusionError(SymgradError):
    """A set of nodes that cannot be fused into one gate."""
