"""The dependency picture: a server-rendered SVG, layered by graph depth (what relies on
the CI above it, business services on top; what it relies on below), readable at 200
CIs because a layer wider than the picture wraps onto more rows.

Layout: each layer's CIs are ordered by the mean position of their neighbours in the
layer above, then once more by those in the layer below (the barycentre heuristic),
which removes most crossings at no cost; then rows are cut at ``PER_ROW`` CIs.
All text is escaped; the markup carries classes only (styles come from cmdb.css, as
the pages' Content-Security-Policy wants), and each CI links to its page.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from markupsafe import Markup, escape

NODE_W, NODE_H = 168, 46
GAP_X, GAP_Y = 16, 40
PER_ROW = 6
MARGIN = 12
NAME_CHARS = 24


def _order(layers: dict[int, list[int]], neighbours: dict[int, set[int]]) -> None:
    """Sort each layer by its neighbours' mean position, down then up."""
    keys = sorted(layers)
    position: dict[int, float] = {}
    for key in keys:
        for i, node in enumerate(layers[key]):
            position[node] = i
    for sweep in (keys[1:], keys[-2::-1]):
        for key in sweep:
            own = set(layers[key])

            def centre(node: int, own: set[int] = own) -> float:
                near = [position[n] for n in neighbours[node] if n in position
                        and n not in own]
                return sum(near) / len(near) if near else position[node]

            layers[key].sort(key=lambda n: (centre(n), n))
            for i, node in enumerate(layers[key]):
                position[node] = i


def layout(picture: dict[str, Any]) -> dict[int, tuple[float, float]]:
    """Top-left corner of every CI: layers top to bottom, wrapped at ``PER_ROW``."""
    layers: dict[int, list[int]] = defaultdict(list)
    for node, layer in sorted(picture["layers"].items()):
        layers[layer].append(node)
    neighbours: dict[int, set[int]] = defaultdict(set)
    for edge in picture["edges"]:
        neighbours[edge["source"]].add(edge["target"])
        neighbours[edge["target"]].add(edge["source"])
    _order(layers, neighbours)
    width = min(PER_ROW, max((len(v) for v in layers.values()), default=1))
    full = width * (NODE_W + GAP_X) - GAP_X
    places: dict[int, tuple[float, float]] = {}
    y = MARGIN
    for key in sorted(layers):
        row = layers[key]
        for start in range(0, len(row), PER_ROW):
            part = row[start:start + PER_ROW]
            used = len(part) * (NODE_W + GAP_X) - GAP_X
            x = MARGIN + (full - used) / 2
            for node in part:
                places[node] = (x, y)
                x += NODE_W + GAP_X
            y += NODE_H + GAP_Y
    return places


def _short(text: str, size: int = NAME_CHARS) -> str:
    return text if len(text) <= size else text[:size - 1] + "…"


def render(picture: dict[str, Any], focus: int, type_labels: dict[str, str],
           service_types: set[str]) -> Markup:
    """The SVG of :func:`itsm.plugins.cmdb.graph.neighbourhood`'s answer."""
    places = layout(picture)
    if not places:
        return Markup("")
    width = max(x for x, _ in places.values()) + NODE_W + MARGIN
    height = max(y for _, y in places.values()) + NODE_H + MARGIN
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="cmdb-graph" '
             f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} '
             f'{height:.0f}" role="img" aria-labelledby="graph-title">',
             f'<title id="graph-title">Dependencies of {escape(picture["nodes"][focus]["name"])}'
             f': {len(places)} configuration items, {len(picture["edges"])} relations</title>',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
             'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
             'class="arrow"/></marker></defs>']
    for edge in picture["edges"]:
        a, b = places.get(edge["dependent"]), places.get(edge["provider"])
        if a is None or b is None:
            continue
        # From the dependent's bottom to the provider's top (or the reverse when the
        # provider sits higher, in a cycle), pointing at the provider.
        x1, x2 = a[0] + NODE_W / 2, b[0] + NODE_W / 2
        down = b[1] >= a[1]
        y1 = a[1] + NODE_H if down else a[1]
        y2 = b[1] if down else b[1] + NODE_H
        bend = max(abs(y2 - y1) / 2, 20) * (1 if down else -1)
        parts.append(f'<path class="edge kind-{escape(edge["kind"])}" d="M{x1:.0f},{y1:.0f} '
                     f'C{x1:.0f},{y1 + bend:.0f} {x2:.0f},{y2 - bend:.0f} {x2:.0f},{y2:.0f}" '
                     f'marker-end="url(#arrow)"/>')
    for node_id, (x, y) in places.items():
        node = picture["nodes"].get(node_id)
        if node is None:
            continue
        classes = ["node"]
        if node["type"] in service_types:
            classes.append("service")
        if node_id == focus:
            classes.append("focus")
        if node["lifecycle"] == "retired":
            classes.append("retired")
        label = type_labels.get(node["type"], node["type"])
        parts.append(
            f'<a href="/cmdb/cis/{node_id}"><g class="{" ".join(classes)}">'
            f'<title>{escape(node["name"])} ({escape(label)})</title>'
            f'<rect x="{x:.0f}" y="{y:.0f}" width="{NODE_W}" height="{NODE_H}" rx="6"/>'
            f'<text x="{x + 8:.0f}" y="{y + 19:.0f}" class="name">'
            f'{escape(_short(node["name"]))}</text>'
            f'<text x="{x + 8:.0f}" y="{y + 36:.0f}" class="type">{escape(_short(label))}'
            f'</text></g></a>')
    parts.append("</svg>")
    return Markup("".join(parts))


def layer_counts(picture: dict[str, Any], type_labels: dict[str, str]) -> list[dict[str, Any]]:
    """The numbers beside the picture: CIs per layer and per type."""
    counts: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for node_id, layer in picture["layers"].items():
        node = picture["nodes"].get(node_id)
        if node is not None:
            counts[layer][type_labels.get(node["type"], node["type"])] += 1
    rows = []
    for layer in sorted(counts):
        where = ("this CI" if layer == 0 else
                 f"{-layer} up (relies on it)" if layer < 0 else f"{layer} down (it relies on)")
        rows.append({"layer": where, "total": sum(counts[layer].values()),
                     "types": sorted(counts[layer].items())})
    return rows
