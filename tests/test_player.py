"""The step-through player: its frames, read back with an XML parser, against the trace."""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import symgrad as sg
from symgrad.tables import number

SVG = "{http://www.w3.org/2000/svg}"
NEURON = "1/(1+exp(-(w0*x0+w1*x1+w2)))"
NEURON_AT = dict(w0=2, x0=-1, w1=-3, x1=-2, w2=-3)


def traces():
    yield sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4)
    yield sg.graph(NEURON).backprop(**NEURON_AT)
    yield sg.graph("max(z, w)").backprop(z=2, w=-1, dout=2)
    yield sg.graph("sum((W @ x)**2)", shapes={"W": (2, 2), "x": (2,)}).backprop(
        W=[[0.1, 0.5], [-0.3, 0.8]], x=[0.2, 0.4])


def current(svg: str) -> list[ET.Element]:
    return [el for el in ET.fromstring(svg).iter(f"{SVG}g") if el.get("data-current")]


def edge_texts(svg: str, cls: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for g in ET.fromstring(svg).iter(f"{SVG}g"):
        if g.get("class") == "edge":
            found[g.get("data-edge", "")] = [t.text or "" for t in g.iter(f"{SVG}text")
                                             if t.get("class") == cls]
    return found


@pytest.mark.parametrize("t", list(traces()), ids=["xyz", "neuron", "max", "Wx"])
def test_frames_go_forward_by_node_then_backward_by_edge(t):
    g = t.graph
    p = sg.player(t)
    nodes, edges = g.nx.number_of_nodes(), g.nx.number_of_edges()
    assert len(p.frames) == nodes + edges
    forward, backward = p.frames[:nodes], p.frames[nodes:]
    assert [f.direction for f in forward] == ["forward"] * nodes
    assert [f.direction for f in backward] == ["backward"] * edges
    # Each node once, each after its operands; each edge once, after every edge out of its head.
    order = [f.node for f in forward]
    assert sorted(order) == sorted(g.nodes)
    for u, v in g.nx.edges:
        assert order.index(u) < order.index(v)
    done = [f.edge for f in backward]
    assert sorted(done) == sorted(g.nx.edges)
    for u, v in done:
        for later in g.consumers(v):
            assert done.index((v, later)) < done.index((u, v))
    for f in p.frames:
        (hit,) = current(f.svg)  # exactly one thing highlighted, the one the frame names
        if f.direction == "forward":
            assert hit.get("data-current") == "node" and hit.get("data-node") == f.node
            assert f.text.endswith(f"= {number(t.values[f.node])}")
        else:
            u, v = f.edge
            assert hit.get("data-current") == "edge" and hit.get("data-edge") == f"{u}→{v}"


def test_values_appear_forward_and_gradients_backward():
    t = sg.graph(NEURON).backprop(**NEURON_AT)
    p = sg.player(t)
    n = t.graph.nx.number_of_nodes()
    first, last_forward, last = p.frames[0], p.frames[n - 1], p.frames[-1]
    assert not any(edge_texts(first.svg, "grad").values())
    # After the forward pass every edge shows its operand's value, and no gradient yet.
    for (name, values) in edge_texts(last_forward.svg, "value").items():
        u = name.split("→")[0]
        assert [float(values[0])] == [pytest.approx(t.values[u], rel=1e-3, abs=1e-4)]
    assert not any(edge_texts(last_forward.svg, "grad").values())
    # At the end every edge shows the gradient it sends back, as in the trace.
    for name, grads in edge_texts(last.svg, "grad").items():
        u, v = name.split("→")
        sent = t.dout if not v else t.sent[v, u]
        assert float(grads[0]) == pytest.approx(sent, rel=1e-3, abs=1e-4)


def test_each_backward_step_is_upstream_times_local():
    t = sg.graph(NEURON).backprop(**NEURON_AT)
    for f in sg.player(t).frames:
        if f.direction != "backward":
            continue
        u, v = f.edge
        step = f.text.split(";")[0]
        up, local, down = (float(x) for x in re.findall(r"(?:= |downstream )(-?\d[\d.e+-]*)", step))
        assert up == pytest.approx(t.node_grads[v], rel=1e-3, abs=1e-4)
        assert local == pytest.approx(t.local[v, u], rel=1e-3, abs=1e-4)
        assert down == pytest.approx(t.sent[v, u], rel=1e-3, abs=1e-4)
        assert down == pytest.approx(up * local, rel=1e-3, abs=1e-4)


def test_a_node_with_several_edges_sums_them_when_the_last_is_done():
    t = sg.graph("x*y + x").backprop(x=3, y=2)
    steps = [s for s in sg.player(t).steps() if "Σ" in s]
    assert len(steps) == 1 and steps[0].startswith("backward: q1 → x")
    assert float(steps[0].rsplit("Σ = ", 1)[1]) == pytest.approx(t.grads["x"]) == pytest.approx(2 + 1)


def test_shaped_steps_name_their_vector_jacobian_product():
    *_, t = traces()
    steps = sg.player(t).steps()
    assert "local ∂q1/∂x = (dq1 ↦ W.T @ dq1)" in steps[-1]
    assert "downstream [-0.112,  0.636]" in steps[-1] or "downstream [-0.112, 0.636]" in steps[-1]
    assert np.allclose(t.grads["x"], [-0.112, 0.636])


def test_exports_html_and_svgs(tmp_path):
    p = sg.player(sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4))
    page = tmp_path / "xyz.html"
    p.save(page)
    text = page.read_text(encoding="utf-8")
    assert text.count("<svg") == len(p.frames) and "<script>" in text
    assert "http://" not in text.replace("http://www.w3.org/2000/svg", "")  # nothing fetched
    files = p.write_svgs(tmp_path / "frames")
    assert [f.name for f in files][:2] == ["step-001.svg", "step-002.svg"] and len(files) == 9
    for f in files:
        ET.fromstring(f.read_text(encoding="utf-8"))


def test_player_errors(tmp_path):
    t = sg.graph("x * y").backprop(x=1, y=2)
    with pytest.raises(sg.SymgradError, match="not a Graph"):
        sg.player(t.graph)
    with pytest.raises(sg.SymgradError, match="must end in .html or .gif"):
        sg.player(t).save(tmp_path / "x.svg")
    with pytest.raises(sg.SymgradError, match="seconds per frame"):
        sg.player(t).gif(seconds=0)
    with pytest.raises(sg.SymgradError, match="digits must be"):
        sg.player(t, digits=0)


def test_without_widgets_shows_the_picture_and_the_steps(monkeypatch):
    import builtins

    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    real_import = builtins.__import__

    def no_widgets(name, *args, **kwargs):
        if name == "ipywidgets":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_widgets)
    p = sg.player(sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4))
    p._ipython_display_()
    assert len(shown) == 2 and "<svg" in shown[0].data and "9. backward: q1 → y" in shown[1].data


def test_the_trace_has_its_player_as_a_method():
    t = sg.graph(NEURON).backprop(**NEURON_AT)
    p, q = t.player(), sg.player(t)
    assert p.steps() == q.steps() and p.svgs() == q.svgs()
    assert t.player(digits=2).steps()[0] == "forward: w0 (input) = 2"
    assert p.frames[3]._repr_svg_() == p.frames[3].svg  # a frame as a cell's last line shows its picture


@pytest.mark.parametrize("t", list(traces()), ids=["xyz", "neuron", "max", "Wx"])
def test_the_highlighted_edge_carries_upstream_times_local(t):
    """In the frame's picture: the highlighted edge's red number is the step's downstream, and
    equals the head's gradient times the local derivative, both from the trace."""
    for f in t.player().frames:
        root = ET.fromstring(f.svg)
        caption = [el.text for el in root.iter(f"{SVG}text") if el.get("class") == "step"]
        assert caption == [f.text]
        if f.direction != "backward":
            continue
        u, v = f.edge
        (hit,) = current(f.svg)
        grads = [el.text for el in hit.iter(f"{SVG}text") if el.get("class") == "grad"]
        sent = t.sent.get((v, u))
        if sent is None:  # a label: nothing comes back
            assert grads in ([], [""]) and "no gradient" in f.text
            continue
        assert grads == [f.text.rsplit("downstream ", 1)[1].split(";")[0]]
        if (v, u) in t.local:
            expected = np.asarray(t.node_grads[v]) * np.asarray(t.local[v, u])
            assert np.allclose(sent, expected)
        if np.size(sent) == 1:
            assert float(grads[0]) == pytest.approx(float(sent), rel=1e-3, abs=1e-4)


def test_exports_an_animated_gif_one_picture_per_frame(tmp_path):
    pytest.importorskip("PIL")
    try:
        import cairosvg
    except (ImportError, OSError):
        pytest.skip("CairoSVG or the Cairo library is not installed")
    from PIL import Image

    p = sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4).player()
    p.save(tmp_path / "xyz.gif", seconds=0.5)

    def drawn(svg: str) -> np.ndarray:  # the frame's SVG drawn on its own, on white
        image = Image.open(io.BytesIO(cairosvg.svg2png(bytestring=svg.encode()))).convert("RGBA")
        page = Image.new("RGB", image.size, "white")
        page.paste(image, (0, 0), image)
        return np.asarray(page, dtype=float)

    pictures = [drawn(f.svg) for f in p.frames]
    with Image.open(tmp_path / "xyz.gif") as gif:
        assert gif.format == "GIF" and gif.n_frames == len(p.frames) == 9
        assert gif.info["duration"] == 500 and gif.info["loop"] == 0
        for i in range(gif.n_frames):
            gif.seek(i)
            rgb = np.asarray(gif.convert("RGB"), dtype=float)
            near = np.abs(rgb - [0xbf, 0x87, 0x00]).sum(axis=-1) < 120  # the highlight's colour
            assert near.sum() > 20, i  # every frame highlights its node or edge
            distance = []
            for picture in pictures:
                h, w = min(picture.shape[0], rgb.shape[0]), min(picture.shape[1], rgb.shape[1])
                distance.append(np.abs(rgb[:h, :w] - picture[:h, :w]).mean())
            assert int(np.argmin(distance)) == i  # frame i is the picture of step i


def test_a_gif_without_its_extra_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_cairo(name, *args, **kwargs):
        if name == "cairosvg":
            raise OSError("no library called \"cairo-2\" was found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_cairo)
    p = sg.graph("x * y").backprop(x=1, y=2).player()
    with pytest.raises(sg.SymgradError, match=r'pip install "symgrad\[gif\]"'):
        p.gif()


def test_with_widgets_a_slider_steps_through_the_frames(monkeypatch):
    w = pytest.importorskip("ipywidgets")
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: shown.append(obj))
    p = sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4).player()
    p._ipython_display_()
    (box,) = shown
    (controls, view) = box.children
    play, slider = controls.children
    assert isinstance(slider, w.IntSlider) and (slider.min, slider.max) == (0, len(p.frames) - 1)
    assert isinstance(play, w.Play) and play.max == slider.max
    assert view.value.startswith(p.frames[0].svg)
    for k in (5, 8, 2):
        slider.value = k
        assert view.value.startswith(p.frames[k].svg) and p.frames[k].text.split(":")[0] in view.value
