"""The text of a Program: forward and adjoint assignments with the graph's names."""

import re
import subprocess
import sys

import symgrad as sg
from symgrad.program import build_program

CASES = [("(x + y) * z", None), ("1/(1+exp(-(w0*x0+w1*x1+w2)))", None), ("max(z, w) - (y - x)", None),
         ("sum((W @ x)**2)", {"W": (2, 2), "x": (2,)})]


def assignments(text: str) -> dict[str, str]:
    return dict(line.strip().split(" = ", 1) for line in text.splitlines() if " = " in line)


def test_every_node_and_adjoint_is_assigned_once_under_the_names_the_generated_code_uses():
    for text, shapes in CASES:
        g = sg.graph(text, shapes=shapes)
        program = build_program(g)
        shown = str(program)
        lines = [line.split(" = ")[0].strip() for line in shown.splitlines() if " = " in line]
        assert lines == [*g.operations, *(str(a.target) for a in program.backward)]
        source = g.compile().source
        for name in lines:
            assert re.search(rf"\b{name} = ", source) or name == str(program.dout), (name, source)
        assert shown.splitlines()[-1] == "  return {" + ", ".join(
            f"{n}: {program.grads[n]}" for n in program.wrt) + "}"


def test_the_text_reads_operands_as_written():
    text = str(build_program(sg.graph("max(z, w) - (y - x)")))
    got = assignments(text)
    assert got["q1"] == "Max(z, w)" and got["q2"] == "y - x"
    assert got["dz"] == "dq1*[z > w]" and got["dw"] == "dq1*[w > z]"


def test_the_text_is_the_same_in_another_interpreter():
    script = ("import symgrad as sg; from symgrad.program import build_program;"
              "print(build_program(sg.graph('x*y + sigmoid(x) + y', granularity='nary')))")
    runs = {subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           check=True).stdout for _ in range(2)}
    assert len(runs) == 1
    assert runs.pop().strip() == str(build_program(sg.graph("x*y + sigmoid(x) + y", granularity="nary")))


def test_derive_prints_the_backward_pass_as_the_program_does(capsys):
    from symgrad.cli import main

    assert main(["derive", "max(z, w)", "--at", "z=2,w=-1"]) == 0
    out = capsys.readouterr().out
    assert "dz = dq1*[z > w] = 1" in out and "dw = dq1*[w > z] = 0" in out
