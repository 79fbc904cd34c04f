"""The gate library and the rewrite engine fusion runs on.

A :class:`Pattern` names a gate (``sigmoid``), lists the spellings SymPy may
give it (``1/(1 + exp(-a))``, ``exp(a)/(1 + exp(a))``) and the expression that
replaces them (``sigmoid(a)``, which the op table prints without overflow).
Spellings are SymPy expressions in Wilds, in the style of PyTensor's
pattern → replacement rewrites; :data:`PATTERNS` is tried in list order, and
list order is the only ordering.  The gates over arrays
(:data:`symgrad.layers.LAYERS`) are Patterns too, which also say how to
build the gate on its operands; :mod:`symgrad.fusion` finds and fuses both.

Every rewrite goes through one engine, :func:`rewrite`, with one rule list
each: the gate spellings here (:func:`canonical`), the identities of array
expressions and the tidying of gradients in :mod:`symgrad.layers`.

A gate is data: its SymPy expression, whose NumPy spelling (and the stable
spelling of its derivative) the op table declares.  ``fragile`` says why
the spellings are numerically fragile when evaluated as written, for
:func:`symgrad.fusion.lint`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import combinations
from math import comb
from typing import TYPE_CHECKING

import sympy as sp

from .ops import logaddexp, logsigmoid, relu, sigmoid, softplus

if TYPE_CHECKING:
    from .graph import Graph

Rule = Callable[[sp.Expr], "sp.Expr | None"]
Shapes = Mapping[sp.Symbol, tuple]


def rewrite(expr: sp.Expr, rule: Rule, memo: dict[sp.Expr, sp.Expr] | None = None) -> sp.Expr:
    """``expr`` with ``rule`` applied wherever it applies, until it applies nowhere.

    ``rule(e)`` gives what ``e`` becomes, or None.  Each sub-expression is
    tried before and after its operands are rewritten (so ``(exp(2a) −
    1)/(exp(2a) + 1)`` is a tanh, not a sum over a sigmoid), and a result is
    rewritten again.  ``memo`` carries results between calls with one rule.

    >>> x = sp.Symbol("x", real=True)
    >>> rewrite(sp.exp(sp.exp(x)), lambda e: sp.sin(*e.args) if isinstance(e, sp.exp) else None)
    sin(sin(x))
    """
    memo = {} if memo is None else memo

    def walk(e: sp.Expr, depth: int) -> sp.Expr:
        if e.is_Atom or isinstance(e, sp.Tuple):
            return e
        if e in memo:
            return memo[e]
        result = rule(e)
        if result is None:
            args = [walk(arg, 0) for arg in e.args]  # depth counts rewrites of one place
            rebuilt = e.func(*args) if args != list(e.args) else e
            result = rule(rebuilt) if rebuilt is not e else None
            if result is None:
                memo[e] = rebuilt
                return rebuilt
        # every rewrite removes a spelling, so the bound is never reached in practice
        memo[e] = final = result if depth > 50 else walk(result, depth + 1)
        return final

    return walk(expr, 0)


def spellings(pairs: Iterable[tuple[sp.Expr, sp.Expr]], parts: bool = True) -> Rule:
    """The rule of (spelling, replacement) pairs in Wilds: the first spelling, in order,
    that an expression (with ``parts``, or part of a sum or product) matches, replaced."""
    pairs = tuple(pairs)
    # the functions each spelling contains: a quick test before SymPy's (slower) matching
    heads = {s: tuple({type(f) for f in s.atoms(sp.Function, sp.Max, sp.Min)}) for s, _ in pairs}

    def rule(e: sp.Expr) -> sp.Expr | None:
        for spelling, gate in pairs:
            if type(e) is not type(spelling) or not e.has(*heads[spelling]):
                continue
            wilds = gate.atoms(sp.Wild)
            whole = not parts or not isinstance(e, (sp.Add, sp.Mul))
            for part in [()] if whole else _parts(e, spelling, heads[spelling]):
                m = (e if whole else e.func(*part)).match(spelling)
                if m is not None and wilds <= set(m):
                    done = gate.xreplace(m)
                    return done if whole else e.func(done, *(t for t in e.args if t not in part))
        return None

    return rule


def _parts(e: sp.Expr, spelling: sp.Expr, heads: tuple[type, ...], most: int = 500):
    """The terms (factors) of ``e`` that could match the terms (factors) of ``spelling``.

    A spelling's top-level terms are never bare Wilds, so a match takes as
    many terms as the spelling has, with functions where the spelling has them.
    """
    k = len(spelling.args)
    wanted = sum(1 for a in spelling.args if a.has(*heads))
    with_heads = [t for t in e.args if t.has(*heads)]
    without = [t for t in e.args if not t.has(*heads)]
    if comb(len(with_heads), wanted) * comb(len(without), k - wanted) > most:
        return
    for ours in combinations(with_heads, wanted):
        for rest in combinations(without, k - wanted):
            yield ours + rest


@dataclass(frozen=True)
class Pattern:
    """One gate, over scalars or over arrays.

    name:     the gate's name: ``g.fuse(name)``, and the fused node's label
    head:     the SymPy class at the top of the gate's expression
    rewrites: (spelling, gate expression) pairs in Wilds; each spelling equals its gate
    fragile:  why the spellings lose precision or overflow when evaluated as written;
              None when they are fine (relu, affine)
    build:    for a gate that mixes entries (a layer, a loss): its expression on its
              operands; None for an elementwise gate, which is its rewritten spelling
    """

    name: str
    head: type
    rewrites: tuple[tuple[sp.Expr, sp.Expr], ...] = ()
    fragile: str | None = None
    build: Callable[..., sp.Expr] | None = None

    def arguments(self, expr: sp.Expr, shapes: Shapes | None = None) -> tuple[sp.Expr, ...] | None:
        """The gate's operands if ``expr`` (canonical) is this gate, else None."""
        return tuple(expr.args) if issubclass(type(expr), self.head) else None

    def plain_arguments(self, expr: sp.Expr, shapes: Shapes | None = None) -> tuple[sp.Expr, ...] | None:
        """The gate's operands if ``expr`` is a constant times this gate on plain operands
        (constants, constant multiples of one symbol: ``q4``, ``-q5``, ``0``), else None."""
        args = self.arguments(expr.as_coeff_Mul()[1], shapes)
        plain = args is not None and all(a.is_number or a.as_coeff_Mul()[1].is_Symbol for a in args)
        return args if plain else None

    def candidate(self, graph: Graph, node: str, region: list[str]) -> bool:
        """A quick test of ``node`` and the region above it, before any composing."""
        return True


class Softmax(Pattern):
    """exp(a − logaddexp(a, b, …)): the share of e^a in e^a + e^b + …."""

    def arguments(self, expr: sp.Expr, shapes: Shapes | None = None) -> tuple[sp.Expr, ...] | None:
        if not isinstance(expr, sp.exp):
            return None
        terms = sp.Add.make_args(expr.args[0])
        lse = [-t for t in terms if isinstance(-t, logaddexp)]
        if len(lse) != 1:
            return None
        own = sp.Add(*(t for t in terms if t != -lse[0]))
        args = tuple(lse[0].args)
        return args if own in args else None


class Affine(Pattern):
    """w0·x0 + w1·x1 + … + b: products of two factors plus at most one other term."""

    def arguments(self, expr: sp.Expr, shapes: Shapes | None = None) -> tuple[sp.Expr, ...] | None:
        if not isinstance(expr, sp.Add):
            return None
        args: list[sp.Expr] = []
        products = others = 0
        for term in expr.args:
            factors = sp.Mul.make_args(term)
            if len(factors) == 2 and not any(f.is_number for f in factors):
                products += 1
                args.extend(factors)
            else:
                others += 1
                args.append(term)
        return tuple(args) if products and others <= 1 else None


def _sum_of_exponentials(e: sp.Expr) -> bool:
    """``exp(b)``, ``exp(b) + exp(c) + …``, possibly with positive constants."""
    return all(isinstance(t, sp.exp) or (t.is_number and t.is_positive) for t in sp.Add.make_args(e))


a = sp.Wild("a")
rest = sp.Wild("rest", properties=[_sum_of_exponentials])
E = sp.exp

PATTERNS: tuple[Pattern, ...] = (
    Pattern("sigmoid", sigmoid, (
        (1 / (1 + E(-a)), sigmoid(a)),
        (E(a) / (1 + E(a)), sigmoid(a)),
        (1 - sigmoid(a), sigmoid(-a)),
    ), fragile="exp(-a) overflows once a < -709"),
    Pattern("softplus", softplus, (
        (sp.log(1 + E(a)), softplus(a)),
    ), fragile="exp(a) overflows once a > 709, and 1 + exp(a) rounds to 1 once a < -37"),
    Pattern("logsigmoid", logsigmoid, (
        (sp.log(sigmoid(a)), logsigmoid(a)),
        (-softplus(-a), logsigmoid(a)),
    ), fragile="sigmoid(a) rounds to 0 once a < -745 (1 - sigmoid(a) once a > 37), and log(0) is -inf"),
    Pattern("tanh", sp.tanh, (
        ((E(a) - E(-a)) / (E(a) + E(-a)), sp.tanh(a)),
        ((E(2 * a) - 1) / (E(2 * a) + 1), sp.tanh(a)),
        ((1 - E(-2 * a)) / (1 + E(-2 * a)), sp.tanh(a)),
        (2 * sigmoid(2 * a) - 1, sp.tanh(a)),
    ), fragile="exp(a) overflows once |a| > 709, and inf/inf is nan"),
    Pattern("relu", relu, (
        (sp.Max(0, a), relu(a)),
    )),
    Pattern("logsumexp", logaddexp, (
        (sp.log(E(a) + rest), logaddexp(a, sp.log(rest))),
    ), fragile="exp overflows once an operand > 709"),
    Softmax("softmax", sp.exp, (
        (E(a) / (E(a) + rest), E(a - logaddexp(a, sp.log(rest)))),
    ), fragile="exp overflows once an operand > 709, and inf/inf is nan"),
    Affine("affine", sp.Add),
)

BY_NAME: dict[str, Pattern] = {p.name: p for p in PATTERNS}
GATE_SPELLINGS: Rule = spellings(r for p in PATTERNS for r in p.rewrites)
USER_PATTERNS: dict[str, Pattern] = {}  # the gates of users' ops: define_op(..., spellings=...)


def patterns() -> tuple[Pattern, ...]:
    """The elementwise gates: :data:`PATTERNS`, then those of users' ops."""
    return (*PATTERNS, *USER_PATTERNS.values())


def canonical(expr: sp.Expr, memo: dict[sp.Expr, sp.Expr] | None = None) -> sp.Expr:
    """``expr`` with every spelling of a gate replaced by the gate.

    Each sub-expression is tried against each spelling in list order; a
    spelling may also match part of a sum or product.  ``memo`` carries
    results between calls on related expressions.

    >>> x = sp.Symbol("x", real=True)
    >>> canonical(sp.log(1 / (1 + sp.exp(-x))))
    logsigmoid(x)
    >>> canonical(2 * sp.exp(x) / (sp.exp(x) + 1) + sp.log(sp.exp(x) + sp.exp(2 * x)))
    logaddexp(x, 2*x) + 2*sigmoid(x)
    """
    rule = spellings(r for p in patterns() for r in p.rewrites) if USER_PATTERNS else GATE_SPELLINGS
    return rewrite(expr, rule, memo)
