"""Run the notebooks top to bottom in a fresh kernel and save them with their outputs.

The notebooks are stored with their outputs, so that their pictures and
tables show when the repository is browsed.  After changing a notebook, or
anything its outputs show, refresh them from the repository's folder::

    .venv/bin/python notebooks/refresh.py                 # every notebook
    .venv/bin/python notebooks/refresh.py notebooks/01-computational-graphs.ipynb

``tests/test_notebooks.py`` runs each notebook the same way and compares its
fresh outputs with the saved ones through :func:`comparable`, which leaves out
what changes from run to run (progress bars, timings, memory addresses,
temporary folders) and compares PNG images by their size.
It needs the ``test`` or ``notebooks`` extra (nbclient, nbformat, ipykernel).
"""

from __future__ import annotations

import os
import re
import struct
import sys
import tempfile
from base64 import b64decode
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
INLINE = "module://matplotlib_inline.backend_inline"
CELL_TIMEOUT = 120  # seconds; each notebook takes a few seconds in all
TEXTS = ("text/plain", "text/markdown", "text/latex", "text/html", "image/svg+xml", "application/json")
_ADDRESS = re.compile(r"\b0x[0-9a-fA-F]{4,}\b")
_TIME = re.compile(r"\b\d+(?:\.\d+)?(?:e-?\d+)? ?(?:s|ms|µs|us|ns|seconds?)\b")
_TEMP = re.compile(r"(?:/tmp|/var/folders|[A-Z]:\\\\Users\\\\[^\\]+\\\\AppData)[^\s'\"]*")


def notebooks() -> list[Path]:
    """The notebooks of the repository, in their reading order."""
    return sorted(HERE.glob("*.ipynb"))


def execute(path: Path, workdir: str | None = None) -> Any:
    """The notebook at ``path``, run top to bottom in a fresh ``python3`` kernel, with its outputs.

    The kernel starts in ``workdir`` (a new temporary folder if None), so the
    files a notebook writes land there.  Raises nbclient's CellExecutionError,
    naming the cell, if a cell fails.
    """
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    backend = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = INLINE  # the kernel inherits it: figures saved as PNG, no display needed
    try:
        with tempfile.TemporaryDirectory() as scratch:
            client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                             record_timing=False,
                                             resources={"metadata": {"path": workdir or scratch}})
            client.execute()
    finally:
        if backend is None:
            del os.environ["MPLBACKEND"]
        else:
            os.environ["MPLBACKEND"] = backend
    return nb


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else "".join(value) if isinstance(value, list) else repr(value)
    text = _ADDRESS.sub("0x…", text)
    text = _TEMP.sub("<temporary folder>", text)
    return _TIME.sub("<time>", text)


def _png_size(data: str) -> tuple[int, int]:
    raw = b64decode(data)
    width, height = struct.unpack(">II", raw[16:24])
    return width, height


def comparable(nb: Any) -> list[list[tuple[Any, ...]]]:
    """Per code cell, its outputs with what changes from run to run left out.

    Standard output and every text form of a result (plain, Markdown, LaTeX,
    HTML, SVG) are compared as text, with memory addresses, timings and
    temporary folders replaced by placeholders; PNG images by their size;
    standard error (progress bars, warnings) not at all.
    """
    cells = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        outputs: list[tuple[Any, ...]] = []
        for out in cell["outputs"]:
            kind = out["output_type"]
            if kind == "stream":
                if out["name"] == "stdout":
                    outputs.append(("stdout", _text(out["text"])))
            elif kind in ("display_data", "execute_result"):
                data = out["data"]
                shown: list[tuple[Any, ...]] = []
                for mime in sorted(data):
                    if mime in TEXTS:
                        shown.append((mime, _text(data[mime])))
                    elif mime == "image/png":
                        png = data[mime]
                        shown.append((mime, _png_size("".join(png) if isinstance(png, list) else png)))
                    else:
                        shown.append((mime,))
                outputs.append((kind, *shown))
            elif kind == "error":
                outputs.append(("error", out["ename"], _text(out["evalue"])))
        # consecutive writes to stdout may arrive as one output or several
        merged: list[tuple[Any, ...]] = []
        for out in outputs:
            if merged and out[0] == merged[-1][0] == "stdout":
                merged[-1] = ("stdout", merged[-1][1] + out[1])
            else:
                merged.append(out)
        cells.append(merged)
    return cells


def main(argv: list[str]) -> int:
    import nbformat

    for name in argv or [str(p) for p in notebooks()]:
        path = Path(name)
        print(f"running {path} …", flush=True)
        nb = execute(path)
        nbformat.write(nb, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
