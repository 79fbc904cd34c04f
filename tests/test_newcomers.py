"""What a student meets first: pictures in Jupyter, and messages that say what to do."""

import contextlib
import io
import xml.etree.ElementTree as ET

import pytest

import symgrad as sg
from symgrad.cli import main

NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
POINT = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)


def run(argv: list[str]) -> tuple[int, str, str]:
    """``symgrad ARGV`` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(argv)
        except SystemExit as e:
            status = e.code if isinstance(e.code, int) else 0
    return status, out.getvalue(), err.getvalue()


# -- sg.render as a cell's last line ----------------------------------------------


def test_render_shows_a_picture_in_jupyter_and_stays_a_string(tmp_path):
    formatters = pytest.importorskip("IPython.core.formatters")
    t = sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4)
    svg = sg.render(t)
    bundle, _ = formatters.DisplayFormatter().format(svg)
    assert bundle["image/svg+xml"] == str(svg) and str(svg).startswith("<svg")
    assert bundle["text/plain"].startswith("<SVG picture, ") and "<svg" not in bundle["text/plain"]
    # still the SVG text wherever code uses it as a string
    assert isinstance(svg, str) and "-12" in svg and ET.fromstring(svg).tag.endswith("svg")
    assert svg == sg.render(t, tmp_path / "t.svg") == (tmp_path / "t.svg").read_text(encoding="utf-8")
    assert f"{svg}" == str(svg) and type(str(svg)) is str and svg + "" == str(svg)
    width = ET.fromstring(svg).get("width")
    assert f"{float(width):.0f}×" in repr(svg)
