"""A step-through backprop player: the picture of a trace, one node or edge at a time.

Forward, one frame per node in the order the values are computed: the node is
highlighted and its value appears on its edges.  Backward, one frame per edge,
from the output back to the inputs: the edge ``u → v`` is highlighted and the
step reads *upstream × local = downstream*, ``∂out/∂v`` times ``∂v/∂u``, the
gradient the edge carries back to ``u`` (written out in red on it).

In Jupyter, :class:`Player` shows a slider with play buttons (ipywidgets); without
ipywidgets it shows the whole picture and the written steps; one :class:`Frame`
as a cell's last line shows its picture.  :meth:`Player.html` is one
self-contained HTML page (the SVG frames and a little JavaScript, nothing
fetched) for slides; :meth:`Player.write_svgs` writes the frames as SVG files;
:meth:`Player.gif` an animated GIF (with the ``gif`` extra: CairoSVG and Pillow).
"""

from __future__ import annotations

import copy
import html
import io
import json
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx

from .errors import SymgradError
from .picture import INK, Drawing, EdgeText, Picture, _f, check_digits, text_width
from .tables import vjp_text

if TYPE_CHECKING:
    from .interpret import Trace

HIGHLIGHT = "#bf8700"


@dataclass(frozen=True)
class Frame:
    """One step: ``node`` (forward) or ``edge`` ``(u, v)`` (backward) highlighted, the step in words."""

    direction: str  # "forward" or "backward"
    node: str | None
    edge: tuple[str, str] | None
    text: str
    svg: str

    def _repr_svg_(self) -> str:
        return self.svg


class Player:
    """The frames of one trace's forward and backward pass (see the module's description)."""

    def __init__(self, trace: Trace, digits: int = 4):
        check_digits(digits)
        self.trace, self.digits = trace, digits
        self.picture = Picture(trace.graph, trace, digits)
        self._drawing = self.picture.drawing()
        self.frames: list[Frame] = self._frames()

    def _frames(self) -> list[Frame]:
        g, t, p = self.trace.graph, self.trace, self.picture
        order = list(nx.topological_sort(g.nx))
        frames = []
        seen: set[str] = set()
        for n in order:
            seen.add(n)
            kind = g.nx.nodes[n]["kind"]
            what = "input" if kind == "input" else "constant" if kind == "const" else p.boxes[n].label
            text = f"forward: {n} ({what}) = {p._num(t.values[n])}"
            shown = {e: EdgeText(full.above if e[0] in seen else "") for e, full in p.edges.items()}
            stub = EdgeText(p.stub.above if n == g.output else "")
            frames.append(self._frame("forward", n, None, text, shown, stub, totals=set()))
        done: set[tuple[str, str]] = set()
        for v in reversed(order):
            for u in g.nx.predecessors(v):
                done.add((u, v))
                shown = {e: EdgeText(full.above, full.below if e in done else "")
                         for e, full in p.edges.items()}
                totals = {n for n in g.nodes if all((n, c) in done for c in g.consumers(n))}
                text = self._step(u, v)
                users = g.consumers(u)
                if len(users) > 1 and u in totals and t.node_grads.get(u) is not None:
                    total = p._num(t.node_grads[u])
                    text += f"; all {len(users)} edges of {u} done: ∂{g.output}/∂{u} = Σ = {total}"
                frames.append(self._frame("backward", None, (u, v), text, shown, p.stub, totals))
        return frames

    def _step(self, u: str, v: str) -> str:
        g, t, p = self.trace.graph, self.trace, self.picture
        out = g.output
        sent = t.sent.get((v, u))
        if sent is None:
            return f"backward: {v} → {u}: no gradient ({u} is a label)"
        if (v, u) in t.local:
            local = p._num(t.local[v, u])
        else:
            local = f"({vjp_text(g.nx.edges[u, v]['vjp'], g, v)})"
        upstream = p._num(t.node_grads.get(v, t.dout))
        return (f"backward: {v} → {u}: upstream ∂{out}/∂{v} = {upstream} × local ∂{v}/∂{u} = {local}"
                f" = downstream {p._num(sent)}")

    def _frame(self, direction: str, node: str | None, edge: tuple[str, str] | None, text: str,
               shown: dict[tuple[str, str], EdgeText], stub: EdgeText, totals: set[str]) -> Frame:
        p = copy.copy(self.picture)
        p.edges, p.stub = shown, stub
        p.boxes = {n: copy.copy(b) for n, b in self.picture.boxes.items()}
        for n, b in p.boxes.items():
            if n not in totals:
                b.below = [line for line in b.below if "total" not in line[2]]
        drawing = Drawing(p, self._drawing.lay, self._drawing.stub)
        drawing.finish()
        root, ns = drawing.root, ""
        root.set("data-step", text)
        for group in root.iter(f"{ns}g"):
            if node is not None and group.get("class") == "node" and group.get("data-node") == node:
                group.set("data-current", "node")
                for shape in group.iter(f"{ns}ellipse"):
                    shape.set("stroke", HIGHLIGHT)
                    shape.set("stroke-width", "3")
                for label in group.iter(f"{ns}text"):
                    if label.get("class") in ("input", "op"):
                        label.set("fill", HIGHLIGHT)
            if edge is not None and group.get("data-edge") == f"{edge[0]}→{edge[1]}":
                group.set("data-current", "edge")
                path = group.find(f"{ns}path")
                if path is not None:  # a broad band under the line, the line itself in the same colour
                    band = ET.Element("path", {"d": path.get("d", ""), "fill": "none", "stroke": HIGHLIGHT,
                                               "stroke-width": "7", "stroke-opacity": "0.35"})
                    group.insert(0, band)
                    path.set("stroke", HIGHLIGHT)
        caption = ET.SubElement(root, f"{ns}desc")
        caption.text = text
        _caption(root, text)
        return Frame(direction, node, edge, text, ET.tostring(root, encoding="unicode"))

    # -- outputs -----------------------------------------------------------------------

    def steps(self) -> list[str]:
        """Every step in words, forward then backward."""
        return [f.text for f in self.frames]

    def svgs(self) -> list[str]:
        """Every frame as SVG text."""
        return [f.svg for f in self.frames]

    def write_svgs(self, folder: str | os.PathLike[str]) -> list[Path]:
        """Write the frames to ``folder`` as ``step-001.svg``, …; returns the files written."""
        where = Path(folder)
        try:
            where.mkdir(parents=True, exist_ok=True)
            files = []
            for i, f in enumerate(self.frames, 1):
                files.append(where / f"step-{i:03d}.svg")
                files[-1].write_text(f.svg, encoding="utf-8")
        except OSError as e:
            raise SymgradError(f"cannot write the frames to {os.fspath(folder)!r}: {e.strerror}") from None
        return files

    def html(self, seconds: float = 1.0) -> str:
        """One self-contained HTML page stepping through the frames (buttons, slider, play)."""
        g = self.trace.graph
        title = html.escape(f"{g.output} = {g.source or g.expression()}")
        frames = json.dumps([f.svg for f in self.frames]).replace("</", "<\\/")
        steps = json.dumps(self.steps()).replace("</", "<\\/")
        return _PAGE.format(title=title, frames=frames, steps=steps, last=len(self.frames) - 1,
                            ms=int(seconds * 1000))

    def gif(self, seconds: float = 1.0, scale: float = 1.0) -> bytes:
        """The frames as an animated GIF, ``seconds`` each, looping; needs the ``gif`` extra.

        The frames are drawn by CairoSVG and put together by Pillow
        (``pip install "symgrad[gif]"``; CairoSVG needs the Cairo library).
        """
        if not (isinstance(seconds, (int, float)) and 0 < seconds <= 60):
            raise SymgradError(f"seconds per frame must be a number from 0 to 60, not {seconds!r}")
        if not (isinstance(scale, (int, float)) and 0 < scale <= 8):
            raise SymgradError(f"scale must be a number from 0 to 8, not {scale!r}")
        try:
            import cairosvg
            from PIL import Image
        except (ImportError, OSError) as e:  # OSError: CairoSVG without the Cairo library
            raise SymgradError(f'an animated GIF needs the gif extra: pip install "symgrad[gif]" ({e}); '
                               'save("steps.html") needs nothing more') from None
        images = [Image.open(io.BytesIO(cairosvg.svg2png(bytestring=f.svg.encode("utf-8"), scale=scale)))
                  for f in self.frames]
        width, height = max(i.width for i in images), max(i.height for i in images)
        pages = []
        for image in images:  # every frame on a white page of the largest frame's size
            page = Image.new("RGB", (width, height), "white")
            page.paste(image.convert("RGBA"), (0, 0), image.convert("RGBA"))
            pages.append(page.quantize(colors=255))
        out = io.BytesIO()
        pages[0].save(out, format="GIF", save_all=True, append_images=pages[1:],
                      duration=int(seconds * 1000), loop=0)
        return out.getvalue()

    def save(self, path: str | os.PathLike[str], seconds: float = 1.0) -> None:
        """Write :meth:`html` to ``path`` ending in ``.html``, or :meth:`gif` to one ending in ``.gif``."""
        name = os.fspath(path).lower()
        if not name.endswith((".html", ".htm", ".gif")):
            raise SymgradError(f"cannot write a player to {os.fspath(path)!r}: "
                               "the name must end in .html or .gif")
        data = self.gif(seconds) if name.endswith(".gif") else self.html(seconds).encode("utf-8")
        try:
            Path(path).write_bytes(data)
        except OSError as e:
            raise SymgradError(f"cannot write {os.fspath(path)!r}: {e.strerror}") from None

    def _ipython_display_(self) -> None:
        from IPython.display import SVG, Markdown, display

        try:
            import ipywidgets as w
        except ImportError:  # no widgets: the whole picture and the steps written out
            display(SVG(self.picture.svg()))
            display(Markdown("\n".join(f"{i}. {s}" for i, s in enumerate(self.steps(), 1))))
            return
        last = len(self.frames) - 1
        play = w.Play(min=0, max=last, interval=1000)
        slider = w.IntSlider(min=0, max=last, description="step")
        w.jslink((play, "value"), (slider, "value"))
        view = w.HTML()

        def show(change: Any = None) -> None:
            f = self.frames[slider.value]
            view.value = f"{f.svg}<p>{html.escape(f.text)}</p>"

        slider.observe(show, names="value")
        show()
        display(w.VBox([w.HBox([play, slider]), view]))


def _caption(root: ET.Element, text: str) -> None:
    """Write the step beneath the picture, widening the picture if the step is wider."""
    x, y, w, h = (float(v) for v in root.get("viewBox", "0 0 0 0").split())
    size = 13.0
    width = max(w, text_width(text, size) + 16)
    label = ET.SubElement(root, "text", {"x": _f(x + 8), "y": _f(y + h + size), "class": "step",
                                         "font-size": f"{size:g}", "fill": INK})
    label.text = text
    h += size + 8
    root.set("viewBox", f"{_f(x)} {_f(y)} {_f(width)} {_f(h)}")
    root.set("width", _f(width))
    root.set("height", _f(h))
    background = root.find("rect")
    if background is not None:
        background.set("width", _f(width))
        background.set("height", _f(h))


def player(trace: Trace, digits: int = 4) -> Player:
    """A step-through player of ``trace``: forward node by node, then backward edge by edge.

    Parameters
    ----------
    trace:
        a :class:`~symgrad.Trace`, from ``g.backprop(...)``.
    digits:
        significant digits of the numbers shown.

    Returns
    -------
    Player
        ``.frames`` (one per node, then one per edge), ``.steps()``, ``.html()``,
        ``.write_svgs(folder)``; in Jupyter it shows itself with a slider.

    >>> import symgrad as sg
    >>> p = sg.player(sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4))
    >>> len(p.frames)  # 5 nodes forward, 4 edges backward
    9
    >>> p.steps()[5]
    'backward: q2 → q1: upstream ∂q2/∂q2 = 1 × local ∂q2/∂q1 = -4 = downstream -4'
    """
    from .interpret import Trace

    if not isinstance(trace, Trace):
        raise SymgradError("a player steps through a Trace (g.backprop(...)), "
                           f"not a {type(trace).__name__}")
    return Player(trace, digits)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:Helvetica,Arial,sans-serif;margin:1em}}#frame svg{{max-width:100%;height:auto}}
#step{{font-size:18px;min-height:2.5em}}button{{font-size:16px}}</style></head>
<body><h3>{title}</h3>
<div><button id="prev">&#9664;</button> <button id="play">play</button> <button id="next">&#9654;</button>
<input id="slider" type="range" min="0" max="{last}" value="0" style="width:50%">
<span id="count"></span></div>
<p id="step"></p><div id="frame"></div>
<script>
const frames = {frames};
const steps = {steps};
let i = 0, timer = null;
const slider = document.getElementById("slider");
function show(k) {{
  i = Math.max(0, Math.min(frames.length - 1, k));
  slider.value = i;
  document.getElementById("frame").innerHTML = frames[i];
  document.getElementById("step").textContent = steps[i];
  document.getElementById("count").textContent = (i + 1) + " / " + frames.length;
}}
document.getElementById("prev").onclick = () => show(i - 1);
document.getElementById("next").onclick = () => show(i + 1);
slider.oninput = () => show(Number(slider.value));
document.getElementById("play").onclick = () => {{
  if (timer) {{ clearInterval(timer); timer = null; return; }}
  timer = setInterval(() => {{ if (i >= frames.length - 1) {{ clearInterval(timer); timer = null; }}
                              else show(i + 1); }}, {ms});
}};
document.addEventListener("keydown", e => {{ if (e.key === "ArrowRight") show(i + 1);
                                             if (e.key === "ArrowLeft") show(i - 1); }});
show(0);
</script></body></html>
"""
