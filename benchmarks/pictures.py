"""How readable symgrad's pictures are, and the PNGs of them in docs/images.

    python benchmarks/pictures.py            # a table: crossings, overlaps, width, smallest text
    python benchmarks/pictures.py --png      # also write docs/images/*.png (needs cairosvg)
                                             # and docs/images/xyz-player.html, .gif
    python benchmarks/pictures.py --notation # the displays' time with the one notation, and without
    python benchmarks/pictures.py --scale    # sg.render's seconds and peak memory, 1,000 … 10,000 nodes

The graphs are the lectures' three circuits, a 30-node expression and the CS231n
two-layer net on a batch of 64 CIFAR-10 images; each is drawn as a trace (values and
gradients).  "smallest text" is the smallest font in pixels once the picture is shrunk
to 900 px, a notebook's width.  Graphviz's ``dot`` layout is measured too where installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

import symgrad as sg
from symgrad.layout import dot_available
from symgrad.picture import Picture

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import dag, exponent, mlp, signed  # noqa: E402

THIRTY = ("sigmoid(w1*x1 + w2*x2 + b1) * tanh(w3*x1 - w4*x2)"
          " + log(1 + exp(w5*x3 + w6*x4)) / (x3*x3 + x4*x4 + 1) + max(x1, x2) * relu(b2 - x4)")
TWO_LAYER = ("-mean(log(pick(softmax(relu(X @ W1 + b1) @ W2 + b2), y)))"
             " + 0.5*reg*(sum(W1*W1) + sum(W2*W2))")
TWO_LAYER_SHAPES = {"X": (64, 3072), "W1": (3072, 100), "b1": (100,), "W2": (100, 10), "b2": (10,),
                    "y": (64,)}


def traces() -> dict[str, sg.Trace]:
    """The graphs the docs show, each with numbers on every node."""
    rng = np.random.default_rng(0)
    out = {
        "xyz": sg.graph("(x + y) * z").backprop(x=-2, y=5, z=-4),
        "neuron": sg.graph("1/(1+exp(-(w0*x0+w1*x1+w2)))").backprop(w0=2, x0=-1, w1=-3, x1=-2, w2=-3),
        "max": sg.graph("max(z, w)").backprop(z=2, w=-1, dout=2),
    }
    g = sg.graph(THIRTY)
    out["thirty"] = g.backprop(**{n: float(v) for n, v in zip(g.inputs, rng.normal(size=len(g.inputs)))})
    g = sg.graph(TWO_LAYER, shapes=TWO_LAYER_SHAPES, dtypes={"y": int})
    values = {k: 0.01 * rng.normal(size=s) for k, s in TWO_LAYER_SHAPES.items() if k != "y"}
    out["two_layer"] = g.backprop(**values, y=rng.integers(0, 10, size=64), reg=0.1)
    return out


def measures() -> list[tuple[str, str, int, object]]:
    """``(graph, layout, nodes, Measures)`` for every graph and every layout at hand."""
    engines = ["layers"] + (["dot"] if dot_available() else [])
    rows = []
    for name, t in traces().items():
        for engine in engines:
            rows.append((name, engine, t.graph.nx.number_of_nodes(), Picture(t.graph, t).measure(engine)))
    return rows


def notation_cost(terms: int = 60, rounds: int = 3) -> None:
    """Tables, explanation and picture of a graph of ``terms`` sigmoids: with the notation
    (q*(1 - q) through each sigmoid's node) and without it, interleaved, in this run."""
    import time

    import symgrad.tables as tables

    g = sg.graph(" + ".join(f"sigmoid(x{i}*w{i})*exp(x{i})" for i in range(terms)))
    t = g.backprop(**{n: 0.1 for n in g.inputs})
    found = tables.sigmoid_outputs

    def shown() -> float:
        start = time.perf_counter()
        str(g.table()), str(t.table()), str(t.explain()), sg.render(g)
        return time.perf_counter() - start

    times: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(rounds):
        for which in ("with", "without") if _ % 2 else ("without", "with"):
            tables.sigmoid_outputs = found if which == "with" else (lambda graph: {})  # type: ignore[assignment]
            times[which].append(shown())
    tables.sigmoid_outputs = found
    best = {k: min(v) for k, v in times.items()}
    print(f"displays of {len(g.nodes)} nodes ({terms} sigmoids): with the notation {best['with']:.2f} s, "
          f"without {best['without']:.2f} s, ratio {best['with'] / best['without']:.2f} (min of {rounds})")


def sigmoid_chain(levels: int) -> sg.Graph:
    """The depth-``levels`` chain of 1/(1+exp(-(w·h + b))) from a string: 8 nodes a level."""
    h = "x"
    for i in range(1, levels + 1):
        h = f"1/(1+exp(-(w{i}*{h}+b{i})))"
    return sg.graph(h)


# family: (graph of about n nodes)
SCALED = {
    "sigmoid chain (string)": lambda n: sigmoid_chain(n // 8),
    "DAG with reuse (traced)": lambda n: sg.graph(signed(*dag(n // 5, sg.sin))),
    "scalar MLP (traced)": lambda n: sg.graph(signed(*mlp(n // 8, sg.sigmoid))),
}


def render_cost(obj: sg.Graph | sg.Trace, **options: object) -> tuple[float, float, str]:
    """Seconds (best of two) and peak MiB (tracemalloc, another call) of sg.render(obj), and the SVG."""
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        svg = sg.render(obj, **options)  # type: ignore[arg-type]
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    sg.render(obj, **options)  # type: ignore[arg-type]
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak, svg


def scale(sizes: tuple[int, ...] = (1000, 2500, 5000, 10_000)) -> None:
    """sg.render of each family's graph and trace at about ``sizes`` nodes: seconds, peak MiB
    and the nodes drawn, with the fitted exponents of time and memory against the node count;
    then the chain's and the DAG's traces drawn whole (``max_nodes=None``)."""
    print(f"sg.render: seconds (best of 2) and peak MiB (tracemalloc, the render only), {sizes} nodes")
    print(f"{'graph':<24} {'drawn':<12} {'nodes':>6} {'shown':>6} {'seconds':>8} {'peak MiB':>9}")
    runs: list[tuple[str, str, dict[str, object]]] = [
        (name, what, {}) for name in SCALED for what in ("graph", "trace")]
    runs += [(name, "trace", {"max_nodes": None}) for name in list(SCALED)[:2]]
    for name, what, options in runs:
        label = f"{what}, whole" if options else what
        ns, ts, ms = [], [], []
        for n in sizes:
            g = SCALED[name](n)
            obj = g if what == "graph" else g.backprop(**{k: 0.1 for k in g.inputs})
            seconds, peak, svg = render_cost(obj, **options)
            nodes = g.nx.number_of_nodes()
            shown = len(re.findall(r'<g class="node[ "]', svg))
            ns.append(nodes), ts.append(seconds), ms.append(peak)
            print(f"{name:<24} {label:<12} {nodes:>6} {shown:>6} {seconds:>8.2f} {peak:>9.1f}")
        print(f"{name:<24} {label:<12} exponent: time {exponent(ns, ts):.2f}, memory {exponent(ns, ms):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--png", action="store_true", help="write docs/images/<graph>.png")
    parser.add_argument("--notation", action="store_true", help="only the displays' cost of the notation")
    parser.add_argument("--scale", action="store_true",
                        help="only sg.render's time and memory, 1,000 … 10,000 nodes")
    args = parser.parse_args()
    if args.scale:
        scale()
        return
    if args.notation:
        notation_cost()
        return
    print(f"{'graph':<10} {'layout':<7} {'nodes':>5} {'crossings':>9} {'overlaps':>8} "
          f"{'width':>6} {'height':>6} {'text@900':>8}")
    for name, engine, n, m in measures():
        print(f"{name:<10} {engine:<7} {n:>5} {m.crossings:>9} {m.overlaps:>8} "
              f"{m.width:>6.0f} {m.height:>6.0f} {m.smallest_text:>8.1f}")
    if args.png:
        import cairosvg  # only here: not a dependency of symgrad

        folder = Path(__file__).resolve().parent.parent / "docs" / "images"
        folder.mkdir(parents=True, exist_ok=True)
        shown = traces()
        for name, t in shown.items():
            png = str(folder / f"{name}.png")
            cairosvg.svg2png(bytestring=sg.render(t).encode(), write_to=png, scale=1.5)
            print("wrote", folder / f"{name}.png")
        # The player of (x + y)·z: one backward step as a picture, and the whole as a page.
        p = shown["xyz"].player()
        step = next(i for i, f in enumerate(p.frames) if f.edge == ("q1", "q2"))
        cairosvg.svg2png(bytestring=p.frames[step].svg.encode(), write_to=str(folder / "player-step.png"),
                         scale=1.5)
        p.save(folder / "xyz-player.html")
        p.save(folder / "xyz-player.gif", seconds=1.5)
        print("wrote", folder / "player-step.png", folder / "xyz-player.html", folder / "xyz-player.gif")
        # The neuron with its sigmoid fused, the gate opened in a frame.
        neuron = shown["neuron"]
        fused = sg.graph(neuron.graph.source).fuse("sigmoid")
        opened = sg.render(fused.backprop(**{n: neuron.values[n] for n in fused.inputs}), expand=True)
        cairosvg.svg2png(bytestring=opened.encode(), write_to=str(folder / "neuron-expanded.png"), scale=1.5)
        print("wrote", folder / "neuron-expanded.png")


if __name__ == "__main__":
    main()
