"""Array bodies with each temporary that one later line reads written into that line.

The generated source names every node, one assignment a line, so each NumPy
operation makes a fresh array.  Written inline, ``q3 = (w0*x0) + (w1*x1)``
hands NumPy temporaries no name holds, and NumPy reuses such a buffer for the
next operation instead of allocating another (for arrays of 256 KiB and
more).  :func:`inline_temporaries` makes that text from a body: the same
operations in the same order, so the same numbers, for the compiled entry
points to run; ``source`` keeps the readable lines.

>>> inline_temporaries(["q1 = w0*x0", "q2 = q1 + w1", "del w0", "q3 = np.exp(q2)", "return q3, q2*0"])
['q2 = (w0*x0) + w1', 'del w0', 'q3 = np.exp(q2)', 'return q3, q2*0']
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections import Counter
from itertools import accumulate

from .scalar import _IDENTIFIER as _NAME  # a name read or assigned; not an attribute or exponent
from .scalar import DELETE as _DELETE
from .scalar import line_template

_SIMPLE = re.compile(r"([A-Za-z_]\w*) = (.+)")  # a top-level one-line assignment
MAX_PARTS = 8  # temporaries written into one line at most: the line stays short and shallow


def inline_temporaries(body: list[str]) -> list[str]:
    """``body`` with each temporary that exactly one later one-line assignment reads written,
    in parentheses, into that line.  A temporary is written in only where nothing between
    its line and its reader assigns a name it reads or is other than a one-line assignment
    or a ``del``; a ``del`` of a name it reads waits until its reader has run."""
    simple = [_simple(line) for line in body]
    uses = Counter(n for line in body if not _DELETE.fullmatch(line) for n in _NAME.findall(line))
    reader = _readers(body, simple, uses)
    pending: dict[str, tuple[str, int]] = {}  # a temporary written in later: its text, its parts
    held: Counter[str] = Counter()  # names the pending temporaries read: deleted once they are written in
    waiting: list[str] = []  # deletions of held names, made once nothing holds them
    inlined: set[str] = set()  # temporaries written into their readers: never assigned
    out: list[str] = []
    for i, line in enumerate(body):
        deleted = _DELETE.fullmatch(line)
        if deleted:
            names = [n for n in deleted[1].split(", ") if n not in inlined]
            waiting += [n for n in names if held[n]]
            names = [n for n in names if not held[n]]
            if names:
                out.append(f"del {', '.join(names)}{deleted[2] or ''}")
            continue
        found = simple[i]
        if found is None:
            out.append(line)
            continue
        target, text = found
        parts = 1
        written = dict.fromkeys(n for n in _NAME.findall(text) if n in pending)
        for name in written:
            inner, count = pending.pop(name)
            inlined.add(name)
            text = re.sub(rf"(?<![\w.]){name}(?!\w)", f"({inner})", text)  # no backslashes: see _simple
            parts += count
            for read in _NAME.findall(inner):
                held[read] -= 1
        if target in reader and parts < MAX_PARTS:
            pending[target] = (text, parts)
            held.update(_NAME.findall(text))
        else:
            out.append(f"{target} = {text}")
        free = [n for n in waiting if not held[n]] if written else []
        if free:
            out.append(f"del {', '.join(free)}")
            waiting = [n for n in waiting if held[n]]
    return out


def _simple(line: str) -> tuple[str, str] | None:
    """(target, expression) of a top-level one-line assignment of names, numbers and calls."""
    found = _SIMPLE.fullmatch(line)
    return None if found is None or line_template(line) is None else (found[1], found[2])


def _readers(body: list[str], simple: list[tuple[str, str] | None], uses: Counter[str]) -> dict[str, int]:
    """{temporary: the line that reads it}: temporaries assigned once and read once, by a later
    one-line assignment, with only one-line assignments and dels between that assign nothing
    the temporary reads."""
    blocking = list(accumulate(s is None and not _DELETE.fullmatch(line) for s, line in zip(simple, body)))
    assigned: dict[str, list[int]] = {}  # a name: the lines that assign it, in order
    read_at: dict[str, int] = {}  # a name read once: the one-line assignment that reads it
    for j, assignment in enumerate(simple):
        if assignment is not None:
            for n in _NAME.findall(assignment[1]):
                if uses[n] == 2:
                    read_at.setdefault(n, j)
            assigned.setdefault(assignment[0], []).append(j)
    found: dict[str, int] = {}
    for i, assignment in enumerate(simple):
        if assignment is None or uses[assignment[0]] != 2:  # its assignment and one read
            continue
        target, text = assignment
        j = read_at.get(target, -1)
        reads = set(_NAME.findall(text))
        if j > i and blocking[j] == blocking[i] and target not in reads and not any(
                bisect_right(assigned.get(n, ()), i) < bisect_left(assigned.get(n, ()), j) for n in reads):
            found[target] = j
    return found
