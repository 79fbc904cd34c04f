"""What ``import symgrad`` loads: the homework package only when ``sg.homework`` is used."""

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
