"""What ``import symgrad`` loads: its public names on first use, the homework package when used."""

import subprocess
import sys

OPTIONAL = ("symgrad.homework", "scipy", "matplotlib", "dask", "distributed", "array_api_compat",
            "array_api_strict", "torch", "jax", "cupy", "IPython", "tqdm", "pandas")

SCRIPT = f"""
OPTIONAL = {OPTIONAL!r}
import sys
import symgrad as sg
print(sorted(m for m in sys.modules if m.startswith(OPTIONAL)))
sg.homework.grade
print("symgrad.homework.grading" in sys.modules)
"""


def test_import_symgrad_loads_the_homework_package_only_when_used():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
    first, second = out.stdout.splitlines()
    assert first == "[]"
    assert second == "True"


def test_an_unknown_attribute_is_an_attribute_error():
    import pytest

    import symgrad as sg

    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        sg.nothing_here  # noqa: B018


CLI = f"""
import contextlib, io, sys
from symgrad.cli import main
with contextlib.redirect_stdout(io.StringIO()):
    main(["derive", "x*y", "--at", "x=1,y=2"])
print(sorted(m for m in sys.modules if m.startswith({OPTIONAL!r})))
"""


def test_the_command_line_loads_the_homework_checker_only_for_check():
    out = subprocess.run([sys.executable, "-c", CLI], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    help_text = subprocess.run([sys.executable, "-m", "symgrad", "--help"], capture_output=True, text=True,
                               check=True).stdout
    assert "check" in help_text  # help still lists it


LAZY = """
import sys
import symgrad as sg
print(sorted(m for m in sys.modules if m.split(".")[0] in ("sympy", "networkx", "numpy")
             or m == "symgrad.homework"))
print(sg.__version__)
"""


def test_import_symgrad_loads_neither_sympy_nor_networkx_nor_numpy():
    out = subprocess.run([sys.executable, "-c", LAZY], capture_output=True, text=True, check=True)
    loaded, version = out.stdout.splitlines()
    assert loaded == "[]"
    assert version and version[0].isdigit()


EVERY_NAME = """
import sys
import symgrad as sg
name = sys.argv[1]
value = getattr(sg, name)
exec(f"from symgrad import {name} as again")
assert again is value, name
assert name in dir(sg)
# a submodule imported afterwards does not take a public name (sg.graph stays the function)
import symgrad.codegen, symgrad.explain, symgrad.graph, symgrad.player
for public in ("graph", "codegen", "explain", "player"):
    assert callable(getattr(sg, public)) and not isinstance(getattr(sg, public), type(sys)), public
print(type(value).__name__)
"""


def test_every_public_name_resolves_first_whatever_is_used_first():
    import pytest

    import symgrad as sg

    firsts = ["graph", "Graph", "codegen", "player", "abs", "homework"]
    for name in firsts:
        out = subprocess.run([sys.executable, "-c", EVERY_NAME, name], capture_output=True, text=True)
        assert out.returncode == 0, (name, out.stderr)
    for name in sg.__all__:
        assert getattr(sg, name) is not None, name
    assert set(sg.__all__) <= set(dir(sg))
    with pytest.raises(ImportError):
        exec("from symgrad import nothing_here")


def test_the_type_checking_imports_name_every_lazy_name():
    """What editors and mypy see (the TYPE_CHECKING block) is what runs (the table of lazy names)."""
    import ast
    import inspect

    import symgrad as sg

    tree = ast.parse(inspect.getsource(sg))
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING")
    seen = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            for alias in node.names:
                where = (node.module, alias.name) if node.module else (alias.name, "")
                seen[alias.asname or alias.name] = where
    assert set(seen) == set(sg.__all__)
    assert {name: sg._LAZY[name] for name in seen} == seen


VERSION = """
import contextlib, io, sys
from symgrad.cli import main
for argv in (["--version"], ["--help"], []):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        try:
            main(argv)
        except SystemExit:
            pass
    print(repr(out.getvalue()[:60]), file=sys.stderr)
print(sorted(m for m in sys.modules if m.split(".")[0] in ("sympy", "networkx", "numpy")
             or m.startswith("symgrad.homework")))
"""


def test_version_and_help_start_without_sympy():
    out = subprocess.run([sys.executable, "-c", VERSION], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    version = subprocess.run([sys.executable, "-m", "symgrad", "--version"], capture_output=True, text=True,
                             check=True).stdout
    import symgrad as sg

    assert version.strip() == f"symgrad {sg.__version__}"
    help_text = subprocess.run([sys.executable, "-m", "symgrad", "--help"], capture_output=True, text=True,
                               check=True).stdout
    for command in ("derive", "render", "codegen", "check", "grade-answer"):
        assert command in help_text
