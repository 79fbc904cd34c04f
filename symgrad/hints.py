"""Suggestions for error messages: the known name nearest to a mistyped one."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(word: str, known: Iterable[str], form: str = "; did you mean {!r}?") -> str:
    """``form`` filled with the known name closest to ``word``, or ``""`` when none is close.

    >>> did_you_mean("sigmod", ["sigmoid", "softplus", "sin"])
    "; did you mean 'sigmoid'?"
    >>> did_you_mean("X", ["x", "W"], " (did you mean {!r}?)")
    " (did you mean 'x'?)"
    >>> did_you_mean("zzz", ["sigmoid"])
    ''
    """
    names = [k for k in known if k != word]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close:  # a different case is a typo too
        close = [k for k in names if k.lower() == word.lower()][:1]
    return form.format(close[0]) if close else ""
