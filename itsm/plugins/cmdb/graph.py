"""Impact analysis: a bounded breadth-first walk of the relation graph, one query per
level (per 5,000 CIs of the level), with the path to everything reached.

Why not a recursive CTE: the walk must stop at CIs already seen (cycles), keep the
parent of each CI for its path, and run the same on SQLite and PostgreSQL. A level at a
time does all three in as many queries as the graph is deep (bench/cmdb_graph.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from itsm.plugins.cmdb.models import RELATION_KINDS, CiAgency, ConfigItem, Relation

CHUNK = 5000
MAX_DEPTH = 40
MAX_NODES = 50000


@dataclass
class Walk:
    """What a walk reached: for each CI its parent on the shortest path and the kind of
    relation that led there, and its depth."""

    start: list[int]
    parent: dict[int, tuple[int, str] | None] = field(default_factory=dict)
    depth: dict[int, int] = field(default_factory=dict)
    truncated: bool = False

    def path(self, ci_id: int) -> list[int]:
        """The CIs from a start to ``ci_id``, both included."""
        out = [ci_id]
        while (step := self.parent.get(out[-1])) is not None:
            out.append(step[0])
        return out[::-1]


def walk(session: Session, start: list[int], direction: str = "impact",
         max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Walk:
    """Everything that relies on ``start`` (``impact``) or that ``start`` relies on
    (``depends``), level by level; each CI is visited once, so cycles end the walk."""
    if direction == "impact":
        here, there = Relation.provider_id, Relation.dependent_id
    else:
        here, there = Relation.dependent_id, Relation.provider_id
    result = Walk(start=list(start))
    for ci_id in start:
        result.parent[ci_id] = None
        result.depth[ci_id] = 0
    frontier = list(dict.fromkeys(start))
    level = 0
    while frontier and level < max_depth:
        level += 1
        found: list[int] = []
        for i in range(0, len(frontier), CHUNK):
            rows = session.execute(select(here, there, Relation.kind).where(
                here.in_(frontier[i:i + CHUNK]), Relation.removed_at.is_(None)))
            for origin, reached, kind in rows:
                if reached in result.parent:
                    continue
                result.parent[reached] = (origin, kind)
                result.depth[reached] = level
                found.append(reached)
        if len(result.parent) > max_nodes:
            result.truncated = True
            break
        frontier = found
    if frontier and level >= max_depth:
        result.truncated = True
    return result


def load_nodes(session: Session, ids: list[int]) -> dict[int, dict[str, Any]]:
    """id -> name, type, lifecycle, agency of the CIs ``ids`` (few queries)."""
    nodes: dict[int, dict[str, Any]] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        for row in session.execute(select(
                ConfigItem.id, ConfigItem.name, ConfigItem.type_key, ConfigItem.lifecycle,
                ConfigItem.agency_id, ConfigItem.service_id).where(ConfigItem.id.in_(chunk))):
            nodes[row.id] = {"id": row.id, "name": row.name, "type": row.type_key,
                             "lifecycle": row.lifecycle, "agency_id": row.agency_id,
                             "service_id": row.service_id, "used_by": []}
        for ci_id, agency_id in session.execute(select(CiAgency.ci_id, CiAgency.agency_id)
                                                .where(CiAgency.ci_id.in_(chunk))):
            nodes[ci_id]["used_by"].append(agency_id)
    return nodes


@dataclass
class Impact:
    """The result of an analysis: the CIs reached, the services and the agencies among
    them, each with its path from the start."""

    walk: Walk
    nodes: dict[int, dict[str, Any]]
    services: list[dict[str, Any]]
    agencies: list[dict[str, Any]]


def analyse(session: Session, start: list[int], direction: str,
            service_types: list[str], visible: set[int] | None = None) -> Impact:
    """Walk from ``start`` and pick out the services and agencies reached; ``visible``
    (a requester's own CIs) hides the others from the answer, not from the walk."""
    result = walk(session, start, direction)
    nodes = load_nodes(session, list(result.parent))
    services, agencies = [], {}
    for ci_id in sorted(result.parent, key=lambda c: (result.depth[c], c)):
        node = nodes.get(ci_id)
        if node is None or (visible is not None and ci_id not in visible):
            continue
        if node["type"] in service_types and ci_id not in start:
            services.append({"ci": node, "path": result.path(ci_id)})
        if direction != "impact":
            continue
        for agency_id in [node["agency_id"], *node["used_by"]]:
            if agency_id is not None and agency_id not in agencies:
                agencies[agency_id] = {"agency_id": agency_id, "path": result.path(ci_id)}
    return Impact(result, nodes, services, list(agencies.values()))


def kind_label(kind: str, forward: bool = True) -> str:
    spec = RELATION_KINDS.get(kind)
    if spec is None:
        return kind
    return spec.label if forward else spec.inverse


def neighbourhood(session: Session, ci_id: int, limit: int = 240) -> dict[str, Any]:
    """The CI, what relies on it (negative layers, services on top) and what it relies
    on (positive layers), at most ``limit`` CIs, with the relations among them."""
    up = walk(session, [ci_id], "impact", max_nodes=limit)
    down = walk(session, [ci_id], "depends", max_nodes=limit)
    # Room for what it relies on first (at most half), the rest for what relies on it.
    down_budget = min(len(down.depth) - 1, limit // 2)
    layer: dict[int, int] = {}
    for c, d in sorted(up.depth.items(), key=lambda x: (x[1], x[0])):
        if len(layer) < limit - down_budget:
            layer[c] = -d
    for c, d in sorted(down.depth.items(), key=lambda x: (x[1], x[0])):
        if c not in layer and len(layer) < limit:
            layer[c] = d
    ids = sorted(layer)
    edges = []
    for i in range(0, len(ids), CHUNK):
        for row in session.execute(select(Relation.source_id, Relation.target_id, Relation.kind,
                                          Relation.dependent_id, Relation.provider_id)
                                   .where(Relation.source_id.in_(ids[i:i + CHUNK]),
                                          Relation.removed_at.is_(None))):
            if row.target_id in layer:
                edges.append({"source": row.source_id, "target": row.target_id,
                              "kind": row.kind, "dependent": row.dependent_id,
                              "provider": row.provider_id})
    return {"layers": layer, "nodes": load_nodes(session, ids), "edges": edges,
            "truncated": up.truncated or down.truncated
            or len(up.depth) + len(down.depth) - 1 > len(layer)}
