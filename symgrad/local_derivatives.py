"""Local derivatives: SymPy's ∂node/∂operand in the forms an edge carries.

Every edge of a :class:`symgrad.graph.Graph` gets three spellings of its local
derivative from :func:`edge_derivatives`: ``derivative`` (SymPy's ``diff``),
``cached`` (rewritten through the node's own output, as the lectures write
∂σ/∂a = σ(1 − σ)) and ``numeric`` (what the backward pass evaluates: the
cached form, or a stable spelling where that one loses precision).
"""

from __future__ import annotations

import sympy as sp

from .gates import rewrite, spellings
from .ir import derivative_edge
from .ops import OPS


def local_derivative(expr: sp.Expr, wrt: sp.Symbol, out: sp.Symbol,
                     simplify: bool = False) -> tuple[sp.Expr, sp.Expr]:
    """∂expr/∂wrt, plain and rewritten through ``out`` (the symbol of ``expr``).

    With ``simplify``, the plain form is the shortest of SymPy's derivative
    and its factored and expanded forms (for fused gates).

    The rewrite replaces ``expr`` by ``out`` where it occurs; where an
    exponential is left over in an elementary ``expr``, it also solves
    ``out = expr`` for it (e^(−a) = (1 − out)/out for the sigmoid) and keeps
    the result when it is simpler and agrees numerically.

    >>> a, q = sp.symbols("a q", real=True)
    >>> local_derivative(sp.exp(a), a, q)
    (exp(a), q)
    >>> local_derivative(1 / (1 + sp.exp(-a)), a, q)[1]
    q*(1 - q)
    """
    plain = _diff(expr, wrt)
    if simplify:
        plain = min([plain, *_forms(plain)], key=sp.count_ops)
    cached = plain.subs(expr, out) if expr.free_symbols else plain
    if cached.has(sp.exp) and _rational_in_exponentials(expr):
        cached = min([cached, *_solved_through_output(plain, expr, out)], key=sp.count_ops)
    elif cached.is_Add and sum(t.has(out) for t in cached.args) > 1:  # -q**2 + q: q*(1 - q)
        cached = min([*_forms(cached), cached], key=sp.count_ops)
    if cached != plain and sp.count_ops(cached) <= sp.count_ops(plain) \
            and not _divides_anew(plain, cached, expr, out):
        return plain, cached
    return plain, plain


def _divides_anew(plain: sp.Expr, cached: sp.Expr, expr: sp.Expr, out: sp.Symbol) -> bool:
    """``cached`` divides by something ``plain`` does not: SymPy's ``subs`` writes the constant
    ∂(c·a)/∂a = c as q/a, which is 0/0 where a = 0.  Dividing by ``out`` is allowed where
    ``plain`` divides by ``expr`` itself or by its base (1/(2√x) as 1/(2q)).

    >>> a, q = sp.symbols("a q", real=True)
    >>> _divides_anew(sp.exp(sp.Integer(2)), q / a, a * sp.exp(sp.Integer(2)), q)
    True
    >>> _divides_anew(1 / (2 * sp.sqrt(a)), 1 / (2 * q), sp.sqrt(a), q)
    False
    """
    def denominators(e: sp.Expr) -> set[sp.Expr]:
        return {p.base for p in e.atoms(sp.Pow) if p.exp.is_negative}

    allowed = denominators(plain)
    if expr in allowed or (expr.is_Pow and expr.base in allowed):
        allowed.add(out)
    return not denominators(cached) <= allowed


def _diff(expr: sp.Expr, wrt: sp.Symbol) -> sp.Expr:
    """SymPy's ``diff``, with a power of zero held constant: 0**y is 0 wherever it is
    defined and differentiable (y > 0), so its derivative is 0, where SymPy's is nan.

    >>> y = sp.Symbol("y", real=True)
    >>> _diff(sp.Integer(0)**y * y, y)
    0**y
    """
    held = {p: sp.Dummy("p") for p in expr.atoms(sp.Pow) if p.base.is_zero and wrt in p.exp.free_symbols}
    if not held:
        return sp.diff(expr, wrt)
    return sp.diff(expr.xreplace(held), wrt).xreplace({d: p for p, d in held.items()})


def numeric_derivative(plain: sp.Expr, cached: sp.Expr, expr: sp.Expr, out: sp.Symbol) -> sp.Expr:
    """The form of ∂expr/∂wrt the backward pass evaluates (see the ``numeric`` edge attribute).

    >>> from symgrad.ops import sigmoid
    >>> a, q = sp.symbols("a q", real=True)
    >>> numeric_derivative(sigmoid(a) * (1 - sigmoid(a)), q * (1 - q), sigmoid(a), q)
    q*sigmoid(-a)
    """
    heads = OPS.stable_heads()
    stable = rewrite(plain, spellings(OPS.stable_derivatives(), parts=False)) \
        if heads and plain.has(*heads) else plain
    if stable == plain:
        return cached
    return stable.subs(expr, out) if expr.free_symbols else stable


def edge_derivatives(expr: sp.Expr, wrt: sp.Symbol, out: sp.Symbol,
                     simplify: bool = False) -> dict[str, sp.Expr]:
    """The edge attributes ``derivative``, ``cached`` and ``numeric`` of ``wrt → out``."""
    plain, cached = local_derivative(expr, wrt, out, simplify)
    return derivative_edge(plain, cached, numeric_derivative(plain, cached, expr, out))


def _solved_through_output(plain: sp.Expr, expr: sp.Expr, out: sp.Symbol) -> list[sp.Expr]:
    """``plain`` with an exponential of ``expr`` replaced by its solution of ``out = expr``."""
    found: list[sp.Expr] = []
    for atom in sorted(expr.atoms(sp.exp), key=sp.default_sort_key):
        t = sp.Dummy("t", positive=True)
        try:
            solutions = sp.solve(sp.Eq(expr.subs(atom, t), out), t)
        except (NotImplementedError, ValueError):
            continue
        for solution in solutions:
            candidates = _forms(sp.cancel(plain.subs(atom, solution)))
            found.extend(c for c in candidates if _agree(plain, c, expr, out))
    return found


def _rational_in_exponentials(expr: sp.Expr) -> bool:
    """``expr`` is built from exponentials with +, ·, / and integer powers (1/(1 + e^(−a)))."""
    functions = expr.atoms(sp.Function, sp.Max, sp.Min)
    return bool(functions) and all(isinstance(f, sp.exp) for f in functions) and all(
        p.exp.is_Integer for p in expr.atoms(sp.Pow))


def _forms(e: sp.Expr) -> list[sp.Expr]:
    """Short spellings of ``e``: factored (``q*(1 - q)``) and expanded (``1 - q**2``)."""
    factored = _tidy(sp.factor(e))
    return [factored, sp.expand(factored)]


def _tidy(e: sp.Expr) -> sp.Expr:
    """``-q*(q - 1)`` as ``q*(1 - q)``: a product's minus sign moved into one of its sums."""
    c, rest = e.as_coeff_Mul()
    if c < 0 and rest.is_Mul:
        for f in rest.args:
            if f.is_Add and f.as_coeff_Add()[0] < 0:
                return -c * sp.Mul(*(g for g in rest.args if g is not f)) * (-f)
    return e


def _agree(a: sp.Expr, b: sp.Expr, expr: sp.Expr, out: sp.Symbol) -> bool:
    """``a`` and ``b`` (which may use ``out``, standing for ``expr``) agree at sample points."""
    symbols = sorted(expr.free_symbols | a.free_symbols - {out}, key=sp.default_sort_key)
    agreed = 0
    for k in range(4):
        point = {s: sp.Float((0.37 + 0.61 * (i + k)) % 2.2 - 1.1) for i, s in enumerate(symbols)}
        try:
            point[out] = expr.evalf(subs=point)
            x, y = complex(a.evalf(subs=point)), complex(b.evalf(subs=point))
        except (TypeError, ValueError, ZeroDivisionError):
            continue
        if not all(map(_finite, (x, y))):
            continue
        if abs(x - y) > 1e-9 * max(1.0, abs(x)):
            return False
        agreed += 1
    return agreed >= 2


def _finite(z: complex) -> bool:
    return z == z and abs(z) != float("inf") and z.imag == 0
