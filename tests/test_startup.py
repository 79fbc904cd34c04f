"""What ``import symgrad`` loads: the homework package only when ``sg.homework`` is used."""

import subprocess
import sys

SCRIPT = """
import sys
import symgrad as sg
print(sorted(m for m in sys.modules if m.startswith(("symgrad.homework", "scipy", "matplotlib"))))
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
