"""The notebooks in notebooks/ run top to bottom in a fresh kernel; their assert cells hold,
and the outputs stored with them are the outputs a fresh run gives."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

_spec = importlib.util.spec_from_file_location(
    "refresh", Path(__file__).resolve().parents[1] / "notebooks" / "refresh.py")
assert _spec is not None and _spec.loader is not None
refresh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(refresh)

NOTEBOOKS = refresh.notebooks()
REFRESH = "run `python notebooks/refresh.py` to save them again"


def test_there_are_seven_notebooks():
    assert [p.name[:3] for p in NOTEBOOKS] == ["01-", "02-", "03-", "04-", "05-", "06-", "07-"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_with_its_outputs(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code, "a notebook without code teaches nothing here"
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), \
        f"{path.name} was not run top to bottom in one go; {REFRESH}"
    assert not any(o["output_type"] == "error" for c in code for o in c["outputs"]), path.name
    shown = [o for c in code for o in c["outputs"]]
    pictures = [o for o in shown if {"image/svg+xml", "image/png"} & set(o.get("data", {}))]
    assert pictures, f"{path.name} shows no picture"


def test_volatile_parts_are_left_out_of_the_comparison():
    def nb(*outputs):
        return {"cells": [{"cell_type": "code", "outputs": list(outputs)}]}

    one = nb({"output_type": "stream", "name": "stdout", "text": "ran in 4.2 s at 0x7f3a2b1c0d90\n"},
             {"output_type": "stream", "name": "stderr", "text": "100%|####| 600/600 [00:01<00:00]"},
             {"output_type": "stream", "name": "stdout", "text": "wrote /tmp/tmpab12cd/grads.py\n"})
    two = nb({"output_type": "stream", "name": "stdout",
              "text": "ran in 17.03 s at 0x55d1e2f3a4b0\nwrote /tmp/tmpzz99/grads.py\n"})
    assert refresh.comparable(one) == refresh.comparable(two)
    changed = nb({"output_type": "stream", "name": "stdout", "text": "ran in 4.2 s at 0x7f3a2b1c0d90\n"
                  "wrote /tmp/tmpab12cd/grads.py\nvalue -12.0\n"})
    assert refresh.comparable(one) != refresh.comparable(changed)
    picture = {"output_type": "display_data", "data": {"image/svg+xml": "<svg>-12</svg>", "text/plain": "t"}}
    other = {"output_type": "display_data", "data": {"image/svg+xml": "<svg>-13</svg>", "text/plain": "t"}}
    assert refresh.comparable(nb(picture)) != refresh.comparable(nb(other))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_its_asserts_hold_and_its_saved_outputs_match(path: Path, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    assert sum("assert " in c.source for c in nb.cells if c.cell_type == "code") >= 3
    try:
        fresh = refresh.execute(path, str(tmp_path))
    except nbclient.exceptions.CellExecutionError as e:  # names the cell and its error
        pytest.fail(f"{path.name}: a cell failed\n{e}", pytrace=False)
    saved, now = refresh.comparable(nb), refresh.comparable(fresh)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    for i, (before, after) in enumerate(zip(saved, now)):
        assert before == after, \
            f"{path.name}: the outputs of cell {i + 1} ({code[i][:60]!r}…) changed; {REFRESH}"


def test_refresh_saves_a_notebook_with_the_outputs_a_fresh_run_gives(tmp_path: Path, capsys):
    first = NOTEBOOKS[0]
    nb = nbformat.read(first, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    copy = tmp_path / first.name
    nbformat.write(nb, copy)
    assert refresh.main([str(copy)]) == 0
    assert f"running {copy}" in capsys.readouterr().out
    again = nbformat.read(copy, as_version=4)
    assert refresh.comparable(again) == refresh.comparable(nbformat.read(first, as_version=4))
    assert all("execution" not in c.metadata for c in again.cells)  # no timings saved


def test_the_docs_say_how_to_run_and_refresh_the_notebooks():
    root = Path(__file__).resolve().parents[1]
    for page in (root / "README.md", root / "docs" / "getting-started.md"):
        text = page.read_text(encoding="utf-8")
        assert "jupyter lab notebooks/" in text and "notebooks/refresh.py" in text, page.name
