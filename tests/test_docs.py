"""Every runnable example in the docs and the README, run as written.

For each page, the ```python blocks run in order in one namespace, in a
temporary directory that holds a link to the repository's ``examples/``.
A ```python block followed directly by a ```text block must print those
lines (each non-blank line, stripped, in order).  In ```console blocks,
each ``$ symgrad ...`` line runs (in this process, through
``symgrad.cli.main``); the lines after it, up to the next ``$``, must appear
in its output, in order.  Its exit status must be 0, or the number in an
``(exit status N)`` line.  Other ``$`` lines (installing, say) are not run.
"""

from __future__ import annotations

import contextlib
import glob
import io
import re
import shlex
from pathlib import Path

import pytest

from symgrad.cli import main

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
STATUS = re.compile(r"^\(exit status (\d+)\)$")


def blocks(text: str) -> list[tuple[str, str, str]]:
    """``(language, body, text of a ```text block right after it)`` for every fenced block."""
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for i, (lang, body, _, end) in enumerate(found):
        following = ""
        if i + 1 < len(found) and found[i + 1][0] == "text" and not text[end:found[i + 1][2]].strip():
            following = found[i + 1][1]
        out.append((lang, body, following))
    return out


def assert_lines_in_order(expected: str, got: str, what: str) -> None:
    position = 0
    lines = got.splitlines()
    for want in (w.strip() for w in expected.splitlines()):
        if not want:
            continue
        for k in range(position, len(lines)):
            if lines[k].strip() == want:
                position = k + 1
                break
        else:
            raise AssertionError(f"{what}: the line {want!r} is not in the output (in order):\n{got}")


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_every_page_is_found():
    names = {p.name for p in PAGES}
    assert {"README.md", "getting-started.md", "concepts.md", "api.md", "cli.md", "homework.md",
            "stability.md", "architecture.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_python_examples(page, workdir):
    namespace: dict = {"__name__": f"docs_{page.stem}"}
    for n, (lang, body, shown) in enumerate(blocks(page.read_text(encoding="utf-8"))):
        if lang != "python":
            continue
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                exec(compile(body, f"{page.name}, block {n + 1}", "exec"), namespace)
            except Exception as e:
                raise AssertionError(f"{page.name}, block {n + 1} failed: {e!r}\n{body}") from e
        if shown:
            assert_lines_in_order(shown, out.getvalue(), f"{page.name}, block {n + 1}")


def commands(page: Path) -> list[tuple[str, str]]:
    """``(command, the output lines shown after it)`` for each ``$ symgrad`` line."""
    found = []
    for lang, body, _ in blocks(page.read_text(encoding="utf-8")):
        if lang != "console":
            continue
        current: list[str] | None = None
        for line in body.splitlines():
            if line.startswith("$ "):
                current = None
                if line[2:].startswith("symgrad "):
                    current = []
                    found.append((line[2:], current))
            elif current is not None:
                current.append(line)
    return [(c, "\n".join(lines)) for c, lines in found]


CONSOLE = [(page, c, shown) for page in PAGES for c, shown in commands(page)]


@pytest.mark.parametrize("page, command, shown", CONSOLE,
                         ids=[f"{p.name}: {c[:60]}" for p, c, _ in CONSOLE])
def test_console_examples(page, command, shown, workdir):
    argv = []
    for token in shlex.split(command)[1:]:
        matches = sorted(glob.glob(token)) if "*" in token else []  # a shell's file names
        argv += matches or [token]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as e:  # --help
            status = e.code if isinstance(e.code, int) else 0
    expected = 0
    lines = []
    for line in shown.splitlines():
        m = STATUS.match(line.strip())
        if m:
            expected = int(m.group(1))
        else:
            lines.append(line)
    text = out.getvalue() + err.getvalue()
    if "symgrad: error: the grader's sandbox needs" in text or "cannot start a sandbox here" in text:
        pytest.skip(f"no sandbox here: {text.strip()}")
    assert status == expected, f"{page.name}: `{command}` exited with {status}, not {expected}:\n{text}"
    assert_lines_in_order("\n".join(lines), text, f"{page.name}: `{command}`")


def test_links_between_pages_resolve():
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#:\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).exists() or "notebooks" in target, \
                f"{page.name} links to {target}, which does not exist"


HEADING = re.compile(r"^### `sg\.(\w+)\((.*)\) -> \w+`$", re.M)


@pytest.mark.parametrize("name, params", HEADING.findall((ROOT / "docs" / "api.md").read_text()))
def test_each_function_heading_of_the_api_page_is_its_signature(name, params):
    """The parameters a heading lists, their kinds and their defaults, are the function's."""
    import ast
    import inspect

    import symgrad as sg

    shown = ast.parse(f"def f({params}): pass").body[0].args  # type: ignore[attr-defined]
    listed = [(a.arg, "positional") for a in shown.posonlyargs + shown.args] + \
        [(a.arg, "keyword") for a in shown.kwonlyargs]
    defaults = [ast.unparse(d) for d in shown.defaults] + \
        [ast.unparse(d) for d in shown.kw_defaults if d is not None]
    actual = inspect.signature(getattr(sg, name)).parameters.values()
    kinds = {inspect.Parameter.KEYWORD_ONLY: "keyword"}
    assert listed == [(p.name, kinds.get(p.kind, "positional")) for p in actual
                      if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    assert defaults == [repr(p.default) for p in actual if p.default is not p.empty]
    assert (shown.kwarg is not None) == any(p.kind == p.VAR_KEYWORD for p in actual)
