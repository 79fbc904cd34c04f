"""The ``symgrad`` command line."""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import InputError, SymgradError

if TYPE_CHECKING:
    from .dims import Shape
    from .graph import Graph

# SymPy, NumPy and networkx are imported by the commands that use them:
# ``symgrad --version`` and ``symgrad --help`` start without them.

EXAMPLES = """\
examples:
  symgrad derive "(x + y) * z" --at x=-2,y=5,z=-4
  symgrad derive "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3
  symgrad derive "max(z, w)" --at z=2,w=-1 --dout 2
  symgrad derive "x*y + x*z + y*z" --granularity nary
  symgrad derive "1/(1+exp(-(w0*x0+w1*x1+w2)))" --fuse sigmoid --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3
  symgrad derive "log(1 + exp(x)) * y" --lint
  symgrad derive "sum((W @ x)**2)" --at "W=[[0.1,0.5],[-0.3,0.8]],x=[0.2,0.4]"

Array values given with --at declare the input's shape; --shape declares it without a value.

An expression may start with '-':  symgrad derive "-x*y" --at x=1,y=2
Integer class labels are declared with --labels:
  symgrad derive "softmax_cross_entropy(s, y)" --at "s=[[1,2,3],[0,0,1]],y=[2,0]" --labels y
"""


CODEGEN_EXAMPLES = """\
examples:
  symgrad codegen "(x + y) * z"                                 # print the module
  symgrad codegen "1/(1+exp(-(w0*x0+w1*x1+w2)))" -o grads.py    # write it
  symgrad codegen "(x + y) * z" --wrt x,y -o xy.py              # gradients for x and y only
  symgrad codegen "sum((W @ x)**2)" --shape "W=(2,2),x=(2,)" -o norm2.py
  symgrad codegen "mean(relu(X @ W))" --shape "X=(N,3),W=(3,H)" -o layer.py   # any N and H

The module needs only NumPy: forward(...) -> (out, cache), backward(dout, cache) -> {input:
gradient}, value_and_grad(...) -> (out, {input: gradient}).  A size named in --shape (N) is read
from the inputs when the module runs; every input's shape is checked against the declared one
(ValueError naming the input and the dimension).
"""


RENDER_EXAMPLES = """\
examples:
  symgrad render "(x + y) * z" --at x=-2,y=5,z=-4 -o xyz.svg
  symgrad render "1/(1+exp(-(w0*x0+w1*x1+w2)))" --at w0=2,x0=-1,w1=-3,x1=-2,w2=-3 -o neuron.svg
  symgrad render "x*x + x" -o branches.svg
  symgrad render "1/(1+exp(-(w*x+b)))" --fuse sigmoid --at w=2,x=-1,b=1 -o gate.svg
"""


def parse_values(specs: Sequence[str], option: str = "--at") -> dict[str, Any]:
    """``["x=-2,y=5", "W=[[1,2],[3,4]]"]`` → ``{"x": -2, "y": 5, "W": [[1, 2], [3, 4]]}``.

    Values are read as Python literals (numbers and nested lists), never evaluated.
    """
    values: dict[str, Any] = {}
    what = "shape" if option == "--shape" else "value"
    for spec in specs:
        for item in _split_top_level(spec):
            name, sep, text = item.partition("=")
            name = name.strip()
            if not sep or not name:
                raise InputError(f"expected NAME=VALUE in {option}, got {item!r}")
            if name in values:
                raise InputError(f"{name!r} is given twice in {option}")
            try:
                read = _shape_literal if what == "shape" else ast.literal_eval
                values[name] = read(text.strip())
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                expected = "like (2, 3) or (N, 3)" if what == "shape" else "a number or a list of numbers"
                raise InputError(f"{what} of {name!r} is not {expected}: {text!r}") from None
    return values


def _shape_literal(text: str) -> Any:
    """``(N, 3)`` → ``("N", 3)``: a tuple (or list) of whole numbers and names, or one of them.

    Read from the syntax tree; nothing is evaluated.
    """
    node = ast.parse(text, mode="eval").body
    items = node.elts if isinstance(node, (ast.Tuple, ast.List)) else None

    def size(n: ast.expr) -> Any:
        if isinstance(n, ast.Name):
            return n.id
        if isinstance(n, ast.Constant) and isinstance(n.value, int):
            return n.value
        raise ValueError(text)

    return tuple(size(n) for n in items) if items is not None else size(node)


def parse_shapes(specs: Sequence[str], values: dict[str, Any] | None = None) -> dict[str, tuple[Any, ...]]:
    """The shapes of ``--shape "W=(2,3),x=(3,)"``, and of the array values given with ``--at``.

    A size may be a name, a dimension whose size the values give: ``--shape "X=(N,3)"``.

    >>> parse_shapes(["W=(2,3),x=3"], {"b": [1.0, 2.0], "c": 1.5})
    {'b': (2,), 'W': (2, 3), 'x': (3,)}
    >>> parse_shapes(["X=(N,3),y=N"])
    {'X': ('N', 3), 'y': ('N',)}
    """
    import numpy as np

    shapes: dict[str, Shape] = {}
    for name, value in (values or {}).items():
        try:
            shape = np.shape(value)
        except ValueError:
            raise InputError(f"value of {name!r} is a ragged list: its rows differ in length") from None
        if shape:
            shapes[name] = tuple(int(n) for n in shape)
    for name, shape in parse_values(specs, "--shape").items():
        dims = shape if isinstance(shape, (tuple, list)) else (shape,)
        if not all(isinstance(n, str) or (isinstance(n, int) and not isinstance(n, bool) and n >= 1)
                   for n in dims):
            raise InputError(f"shape of {name!r} must be positive whole numbers or names like (2, 3) "
                             f"or (N, 3), not {shape!r}")
        shapes[name] = tuple(dims)
    return shapes


def _split_top_level(text: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[(" and 1 or 0
        depth -= ch in "])" and 1 or 0
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p for p in parts if p.strip()]


def parse_labels(specs: Sequence[str]) -> dict[str, type]:
    """``--labels y,t``: the inputs that hold integer class labels.

    >>> parse_labels(["y", "t"])
    {'y': <class 'int'>, 't': <class 'int'>}
    """
    labels: dict[str, type] = {}
    for spec in specs:
        for name in (n.strip() for n in spec.split(",")):
            if name:
                labels[name] = int
    return labels


def derive(args: argparse.Namespace) -> str:
    """The text of ``symgrad derive``."""
    from .frontends import graph
    from .picture import check_digits
    from .tables import derivative_table, number

    check_digits(args.digits)
    values = parse_values(args.at)
    if args.brief and not args.at:
        raise InputError("--brief prints the gradients at a point: give the input values with --at")
    g = graph(args.expression, granularity=args.granularity, shapes=parse_shapes(args.shape, values),
              dtypes=parse_labels(args.labels))
    g = fused(g, args.fuse)
    out = [f"Graph ({args.granularity})", _indent(str(g)), "",
           "Local derivatives (SymPy)", _indent(derivative_table(g))]
    if args.lint:
        findings = g.lint()
        out += ["", "Numerical stability", _indent("\n".join(map(str, findings)) or "nothing fragile found")]
    if not args.at:
        return "\n".join(out)
    t = g.backprop(dout=args.dout, **values)
    gradients = [f"∂{g.output}/∂{n} = {number(v, args.digits)}" for n, v in t.grads.items()]
    if args.brief:
        return "\n".join(gradients)
    out += ["", "Forward pass", _indent(forward_lines(g, t.values, args.digits)),
            "", f"Backward pass (d<node> = ∂{g.output}/∂node, dout = {number(t.dout)})",
            _indent(backward_lines(t, args.digits)),
            "", "Trace", _indent(t.table(args.digits)),
            "", "Gradients", _indent("\n".join(gradients))]
    return "\n".join(out)


def fused(g: Graph, names: Sequence[str]) -> Graph:
    """``g`` with each ``--fuse`` pattern fused in turn ('all': one gate; 'stable': the lint's)."""
    for name in names:
        g = g.fuse_all() if name == "all" else g.fuse_stable() if name == "stable" else g.fuse(name)
    return g


def render_command(args: argparse.Namespace) -> str:
    """``symgrad render``: the SVG picture of EXPR's graph, or of its trace given --at."""
    from .frontends import graph
    from .picture import MAX_DRAWN, render

    values = parse_values(args.at)
    g = graph(args.expression, granularity=args.granularity, shapes=parse_shapes(args.shape, values),
              dtypes=parse_labels(args.labels))
    g = fused(g, args.fuse)
    drawn = g.backprop(dout=args.dout, **values) if args.at else g
    expand = args.expand or False
    part = {"end": args.end, "max_nodes": MAX_DRAWN if args.max_nodes is None else args.max_nodes or None}
    if args.output in (None, "-"):
        return render(drawn, layout=args.layout, digits=args.digits, expand=expand, **part)
    svg = render(drawn, args.output, layout=args.layout, digits=args.digits, expand=expand, **part)
    what = "values and gradients" if args.at else "local derivatives"
    size = re.search(r'width="([\d.]+)" height="([\d.]+)"', svg)
    shown = f", {float(size[1]):.0f}×{float(size[2]):.0f} px" if size else ""
    opened = f" ({g.expand().nx.number_of_nodes()} with its gates opened)" if expand and g.gates else ""
    return (f"wrote {args.output}: the graph of {args.expression.strip()} with its {what}\n"
            f"  {g.nx.number_of_nodes()} nodes{opened}{shown}")


def codegen_command(args: argparse.Namespace) -> str:
    """The text of ``symgrad codegen``: the module's source, or where it was written."""
    from .codegen import codegen
    from .frontends import graph

    g = graph(args.expression, granularity=args.granularity, shapes=parse_shapes(args.shape),
              dtypes=parse_labels(args.labels))
    wrt = [n.strip() for n in args.wrt.split(",") if n.strip()] if args.wrt is not None else None
    text = codegen(g, args.output, wrt=wrt)
    if args.output is None:
        return text.rstrip("\n")
    grads = ", ".join(wrt if wrt is not None else g.inputs) or "no inputs"
    return f"wrote {args.output}: forward, backward and value_and_grad (gradients for {grads})"


def forward_lines(g: Graph, values: dict[str, Any], digits: int) -> str:
    from .tables import expression_text, number

    lines = [f"{n} = {number(values[n], digits)}" for n in g.inputs]
    lines += [f"{n} = {expression_text(g, n)} = {number(values[n], digits)}" for n in g.operations]
    return "\n".join(lines)


def backward_lines(t: Any, digits: int) -> str:
    from .tables import number

    lines = []
    for adj in t.program.backward:
        value = number(t.node_grads[adj.node], digits)
        lines.append(f"{t.program.adjoint_text(adj)} = {value}")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


def expr_help() -> str:
    """The help of EXPR, naming every function of the op table and every composition."""
    from .composed import COMPOSED
    from .ops import FUNCTIONS

    return ("an expression in Python syntax, such as \"(x + y) * z\": numbers, names, + - * / ** @, "
            f".T, and the functions {' '.join([*FUNCTIONS, *COMPOSED])} (parsed, never run)")


def fuse_help() -> str:
    """The help of --fuse, naming every gate of the gate tables."""
    from .gates import patterns
    from .layers import LAYERS

    return (f"fuse a pattern into gates ({', '.join(p.name for p in patterns())}; for tensors "
            f"{', '.join(LAYERS)}), or 'stable' (every fragile spelling), or 'all' "
            "(the whole expression as one gate); repeatable")


AT_HELP = ("input values, e.g. x=-2,y=5,z=-4 or W=[[1,2],[3,4]] (a list gives the input its shape); "
           "repeatable")
SHAPE_HELP = ("input shapes without values, e.g. \"W=(2,3),x=(3,)\"; a size may be a name, "
              "\"X=(N,3),y=(N,)\": the same name is the same size, read from the inputs when the code "
              "runs; inputs not named are scalars")
LABELS_HELP = ("inputs that hold integer class labels, e.g. y (as softmax_cross_entropy(s, y) and "
               "pick(s, y) take them); they get no gradient")


LOCAL_COMMANDS = ("derive", "render", "codegen")
CHECK_HELP = "grade students' gradient code and symbolic answers (the homework checker)"
ANSWER_HELP = "grade one symbolic answer to one problem, as JSON (for a course platform)"


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``symgrad`` parser; for one of :data:`LOCAL_COMMANDS`, without the grader's commands.

    ``check`` and ``grade-answer`` come from the homework package, imported only when the
    command may be one of them (an unknown command).  Without a command (``--help``,
    ``--version``) only the commands' one-line help is shown: the parser is built without
    the homework package and without the op table, so SymPy is not imported.
    """
    expr = expr_help() if command is not None else "an expression"
    parser = argparse.ArgumentParser(
        prog="symgrad",
        description="Derive gradients the way backpropagation is taught: computation graphs, "
                    "local derivatives from SymPy, numbers on every node.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES,
    )
    parser.add_argument("--version", action="version", version=f"symgrad {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    p = sub.add_parser(
        "derive", help="show the graph, local derivatives, forward and backward pass",
        description="Build the computation graph of EXPR, derive every local derivative with "
                    "SymPy and, given --at, run the forward and backward pass with numbers.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES,
    )
    p.add_argument("expression", metavar="EXPR", help=expr)
    p.add_argument("--at", action="append", default=[], metavar="NAME=VALUE,...", help=AT_HELP)
    p.add_argument("--shape", action="append", default=[], metavar="NAME=(D,...),...", help=SHAPE_HELP)
    p.add_argument("--granularity", choices=["primitive", "nary"], default="primitive",
                   help="primitive: binary + and * as in the lectures (default); "
                        "nary: chains of + or * in one node")
    p.add_argument("--dout", type=float, default=1.0,
                   help="the upstream gradient of the output (default 1)")
    p.add_argument("--digits", type=int, default=4, help="significant digits shown (default 4)")
    p.add_argument("--fuse", action="append", default=[], metavar="PATTERN",
                   help=fuse_help() if command is not None else "fuse a pattern into gates")
    p.add_argument("--lint", action="store_true",
                   help="list numerically fragile spellings and the stable gate for each")
    p.add_argument("--brief", action="store_true", help="print only the gradients (needs --at)")
    p.add_argument("--labels", action="append", default=[], metavar="NAME,...", help=LABELS_HELP)
    p.set_defaults(run=derive)

    r = sub.add_parser(
        "render", help="draw the graph as SVG, with values and gradients given --at",
        description="Draw the computation graph of EXPR as an SVG picture: nodes labelled by "
                    "their op and, given --at, each edge with its forward value (green) and the "
                    "gradient sent back along it (red).",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=RENDER_EXAMPLES,
    )
    r.add_argument("expression", metavar="EXPR", help=expr)
    r.add_argument("--at", action="append", default=[], metavar="NAME=VALUE,...", help=AT_HELP)
    r.add_argument("--shape", action="append", default=[], metavar="NAME=(D,...),...", help=SHAPE_HELP)
    r.add_argument("-o", "--output", metavar="FILE.svg",
                   help="where to write the picture (default: print the SVG)")
    r.add_argument("--granularity", choices=["primitive", "nary"], default="primitive",
                   help="primitive (default) or nary, as for derive")
    r.add_argument("--dout", type=float, default=1.0,
                   help="the upstream gradient of the output (default 1)")
    r.add_argument("--digits", type=int, default=4, help="significant digits shown (default 4)")
    r.add_argument("--layout", choices=["layers", "dot"], default="layers",
                   help="layers: networkx, always available (default); dot: Graphviz, if installed")
    r.add_argument("--labels", action="append", default=[], metavar="NAME,...", help=LABELS_HELP)
    r.add_argument("--fuse", action="append", default=[], metavar="PATTERN",
                   help="fuse a pattern into gates, as for derive: each gate is drawn as one node")
    r.add_argument("--expand", action="store_true",
                   help="draw each fused gate as the nodes it was fused from, in a dashed frame")
    r.add_argument("--end", metavar="NODE", help="draw the part of the graph that computes NODE "
                   "(default: the output)")
    r.add_argument("--max-nodes", type=int, metavar="N",
                   help="draw at most N nodes, those nearest the output or NODE (default 2,000; "
                        "0 draws every node)")
    r.set_defaults(run=render_command)

    c = sub.add_parser(
        "codegen", help="write NumPy forward/backward code for an expression",
        description="Generate a standalone Python module (it needs only NumPy) with forward, "
                    "backward and value_and_grad functions for EXPR.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=CODEGEN_EXAMPLES,
    )
    c.add_argument("expression", metavar="EXPR", help=expr)
    c.add_argument("--shape", action="append", default=[], metavar="NAME=(D,...),...", help=SHAPE_HELP)
    c.add_argument("-o", "--output", metavar="FILE", help="the module to write (default: print it)")
    c.add_argument("--wrt", metavar="NAME,...",
                   help="the inputs to differentiate, e.g. x,y (default: all)")
    c.add_argument("--granularity", choices=["primitive", "nary"], default="primitive",
                   help="primitive: binary + and * (default); nary: chains of + or * in one node")
    c.add_argument("--labels", action="append", default=[], metavar="NAME,...", help=LABELS_HELP)
    c.set_defaults(run=codegen_command)
    if command is None:
        sub.add_parser("check", help=CHECK_HELP)
        sub.add_parser("grade-answer", help=ANSWER_HELP)
    elif command not in LOCAL_COMMANDS:
        from .homework.command import add_answer_parser
        from .homework.command import add_parser as add_check_parser

        add_check_parser(sub)
        add_answer_parser(sub)
    return parser


def leading_minus(parser: argparse.ArgumentParser, argv: Sequence[str]) -> list[str]:
    """``derive -x*y`` reads ``-x*y`` as the expression, not as an unknown option.

    After ``derive``, ``render`` or ``codegen``, the expression and the values
    of options (``--dout -1e-3``) may start with ``-``: such a word, where no
    option is known by that name, gets a leading space, which argparse takes
    for a value (the expression parser and ``float`` strip it).  ``--`` before
    the expression is dropped: ``derive -- -x*y --at x=1,y=2`` works too.

    >>> p = build_parser()
    >>> leading_minus(p, ["derive", "-x*y", "--at", "x=1,y=2", "--dout", "-1e-3"])
    ['derive', ' -x*y', '--at', 'x=1,y=2', '--dout', ' -1e-3']
    >>> leading_minus(p, ["render", "--at", "x=1", "--", "-x", "-o", "x.svg", "-z"])
    ['render', '--at', 'x=1', ' -x', '-o', 'x.svg', '-z']
    """
    argv = list(argv)
    command = next((i for i, a in enumerate(argv) if not a.startswith("-")), None)
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if command is None or argv[command] not in LOCAL_COMMANDS or not subparsers:
        return argv
    actions = subparsers[0].choices[argv[command]]._actions
    options = {o: a.nargs != 0 for a in actions for o in a.option_strings}  # does it take a value

    def option(word: str) -> str | None:
        """The option ``word`` names (``--gran`` for ``--granularity``, ``-ofile`` for ``-o``), if any."""
        name = word.split("=", 1)[0]
        if name in options:
            return name
        if word.startswith("--"):
            matches = [o for o in options if o.startswith(name)]
            return matches[0] if len(matches) == 1 else None
        return word[:2] if word[:2] in options else None

    out, expression, dashes, value_next = argv[: command + 1], False, False, False
    for word in argv[command + 1:]:
        if word == "--" and not expression and not dashes:
            dashes = True  # the next word is the expression
            continue
        named = option(word) if word.startswith("-") and len(word) > 1 else None
        if value_next:
            value_next = False
            out.append(" " + word if word.startswith("-") and named is None else word)
        elif dashes or not word.startswith("-") or (named is None and not expression):
            out.append(" " + word if word.startswith("-") and not expression else word)
            expression, dashes = True, False
        else:
            value_next = (named is not None and options[named] and "=" not in word
                          and (word.startswith("--") or len(word) == 2))  # not --at=..., -oFILE
            out.append(word)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(next((w for w in words if not w.startswith("-")), None))
    args = parser.parse_args(leading_minus(parser, words))
    if args.command is None:
        parser.print_help()
        return 2
    try:
        text = args.run(args)
    except SymgradError as e:
        print(f"symgrad: error: {e}", file=sys.stderr)
        return 2
    try:
        if text:
            print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # the reader went away (symgrad derive ... | head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return getattr(args, "exit_code", 0)


if __name__ == "__main__":
    sys.exit(main())
