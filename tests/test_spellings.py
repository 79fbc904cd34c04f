"""Every spelling docs/api.md lists works, in strings and in traced functions, and the
parser knows no function the table leaves out.

The table under "Functions for expressions and traced callables" pairs each
string spelling with the same computation in a traced function; each pair
builds the same values and gradients, checked against finite differences.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import symgrad as sg
from symgrad import parse
from symgrad.composed import COMPOSED

API = Path(__file__).resolve().parents[1] / "docs" / "api.md"
SHAPES = {"x": (2, 3), "y": (2, 3), "w": (3,), "A": (2, 3, 4), "B": (2, 4, 3), "X": (2, 3, 2, 2),
          "labels": (2,)}


def table() -> list[tuple[str, str]]:
    """``(string spelling, traced spelling)`` for every pair of the table."""
    text = API.read_text(encoding="utf-8")
    section = text[text.index("### Functions for expressions and traced callables"):]
    section = section[:section.index("\n\n", section.index("| in a string"))]
    pairs = []
    for row in section.splitlines()[2 + section[:section.index("| in a string")].count("\n"):]:
        cells = row.strip("|").split(" | ")
        strings, functions = (re.findall(r"`([^`]+)`", c) for c in cells[:2])
        assert len(strings) == len(functions), f"unpaired spellings in {row!r}"
        pairs += zip(strings, functions)
    return pairs


PAIRS = table()


def test_the_table_is_read():
    assert len(PAIRS) > 50 and ("A.mT", "A.mT") in PAIRS


@pytest.mark.parametrize("text, traced", PAIRS, ids=[p[0] for p in PAIRS])
def test_spelling_works_in_strings_and_traced_functions(text, traced):
    names = [n for n in SHAPES if re.search(rf"\b{n}\b", text)]
    shapes = {n: SHAPES[n] for n in names}
    dtypes = {"labels": int} if "labels" in names else {}
    from_string = sg.graph(text, shapes=shapes, dtypes=dtypes)
    fn = eval(f"lambda {', '.join(from_string.inputs)}: {traced}", {"sg": sg})  # the docs' own text
    from_function = sg.graph(fn, shapes=shapes, dtypes=dtypes)
    rng = np.random.default_rng(0)
    point = {n: rng.integers(0, 3, size=s) if n == "labels" else rng.uniform(0.1, 0.9, size=s)
             for n, s in shapes.items()}
    a, b = from_string.backprop(**point), from_function.backprop(**point)
    np.testing.assert_allclose(a.value, b.value, rtol=1e-12)
    for n in a.grads:
        np.testing.assert_allclose(a.grads[n], b.grads[n], rtol=1e-12)
    assert sg.check_grad(from_string.compile(), **point).ok


def documented() -> tuple[set[str], set[str], set[str]]:
    """Function names, method names and attributes the string column uses."""
    strings = " ".join(t for t, _ in PAIRS)
    functions = set(re.findall(r"(?<![.\w])([a-z_]\w*)\(", strings))
    methods = set(re.findall(r"\.([a-z_]\w*)\(", strings))
    attributes = set(re.findall(r"\.([A-Za-z_]\w*)\b(?!\()", strings))
    return functions, methods, attributes


def test_the_table_lists_every_function_the_parser_knows():
    functions, methods, attributes = documented()
    known = {*parse.FUNCTIONS, *parse.ALIASES, *parse.SPELLINGS, *COMPOSED}
    assert functions == known, (sorted(known - functions), sorted(functions - known))
    assert methods == set(parse.METHODS)
    assert attributes == set(parse.ATTRIBUTES)


def test_spellings_listed_in_prose_are_in_the_table():
    """Every backquoted call of a known function elsewhere in the docs is accepted too."""
    known = {*parse.FUNCTIONS, *parse.ALIASES, *parse.SPELLINGS, *COMPOSED}
    functions, _, _ = documented()
    pages = sorted(API.parent.glob("*.md")) + [API.parents[1] / "README.md"]
    for page in pages:
        for span in re.findall(r"`([^`\n]+)`", page.read_text(encoding="utf-8")):
            for name in re.findall(r"(?<![.\w])([a-z_]\w*)\(", span):
                if name in known:
                    assert name in functions, f"{page.name}: {span!r} uses {name}, not in the table"
