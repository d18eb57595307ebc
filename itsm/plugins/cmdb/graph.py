"""Impact analysis: a bounded breadth-first walk of the relation graph, one query per
level (per 5,000 CIs of the level), with the path to everything reached.

Why not a recursive CTE: the walk must stop at CIs already seen (cycles), keep the
parent of each CI for its path, and run the same on SQLite and PostgreSQL. A level at a
time does all three in as many queries as the graph is deep (bench/cmdb_graph.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from itsm.plugins.cmdb.models import RELATION_KINDS, CiAgency, ConfigItem, Relation

CHUNK = 5000
MAX_DEPTH = 40
MAX_NODES = 50000


def among(session: Session, column, ids: list[int]):
    """``column IN ids``; on PostgreSQL ``column = ANY(:array)``, one parameter however
    many ids (the driver parses a statement of thousands of placeholders slowly)."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, [int(i) for i in ids], type_=ARRAY(Integer)))
    return column.in_(ids)


def _rows(session: Session, query) -> Any:
    """Core rows of ``query`` on the session's connection (no ORM row processing)."""
    return session.connection().execute(query).all()


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


def reachable(session: Session, start: list[int], here, there, limit: int) -> list[int]:
    """Every CI reachable from ``start`` in one recursive query. UNION (not UNION ALL)
    drops a CI already found, so each is produced once and a cycle ends the recursion;
    the LIMIT stops it early on a hub that reaches too much."""
    reach = (select(ConfigItem.id.label("id")).where(among(session, ConfigItem.id, start))
             .cte("reach", recursive=True))
    reach = reach.union(select(there.label("id")).select_from(Relation)
                        .join(reach, here == reach.c.id)
                        .where(Relation.removed_at.is_(None)))
    return [row[0] for row in _rows(session, select(reach.c.id).limit(limit))]


def walk(session: Session, start: list[int], direction: str = "impact",
         max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES) -> Walk:
    """Everything that relies on ``start`` (``impact``) or that ``start`` relies on
    (``depends``), with the shortest path to each: the reachable CIs in one recursive
    query, their relations in one more (per 5,000 CIs), then a breadth-first walk in
    memory that visits each CI once, so cycles end it."""
    if direction == "impact":
        here, there = Relation.provider_id, Relation.dependent_id
    else:
        here, there = Relation.dependent_id, Relation.provider_id
    result = Walk(start=list(start))
    ids = reachable(session, start, here, there, max_nodes + 1)
    if len(ids) > max_nodes:
        result.truncated = True
    allowed = set(ids) | set(start)
    edges: dict[int, list[tuple[int, str]]] = {}
    for i in range(0, len(ids), CHUNK):
        for origin, reached, kind in _rows(session, select(here, there, Relation.kind).where(
                among(session, here, ids[i:i + CHUNK]), Relation.removed_at.is_(None))):
            if reached in allowed:
                edges.setdefault(origin, []).append((reached, kind))
    for ci_id in start:
        result.parent[ci_id] = None
        result.depth[ci_id] = 0
    frontier = list(dict.fromkeys(start))
    level = 0
    while frontier and level < max_depth:
        level += 1
        found: list[int] = []
        for origin in frontier:
            for reached, kind in sorted(edges.get(origin, ())):
                if reached not in result.parent:
                    result.parent[reached] = (origin, kind)
                    result.depth[reached] = level
                    found.append(reached)
        frontier = found
    if frontier:
        result.truncated = True
    return result


def load_nodes(session: Session, ids: list[int], named: list[int] | None = None) \
        -> dict[int, dict[str, Any]]:
    """id -> type, lifecycle, agency, users and service id of the CIs ``ids``, with the
    name of those in ``named`` (default: all): a walk may reach thousands of CIs, of
    which a page names the few on the paths it shows."""
    nodes: dict[int, dict[str, Any]] = {}
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        rows = _rows(session, select(
            ConfigItem.id, ConfigItem.type_key, ConfigItem.lifecycle, ConfigItem.agency_id,
            ConfigItem.service_id).where(among(session, ConfigItem.id, chunk)))
        for ci_id, type_key, lifecycle, agency_id, service_id in rows:
            nodes[ci_id] = {"id": ci_id, "name": "", "type": type_key, "lifecycle": lifecycle,
                            "agency_id": agency_id, "service_id": service_id, "used_by": []}
        for ci_id, agency_id in _rows(session, select(CiAgency.ci_id, CiAgency.agency_id)
                                                .where(among(session, CiAgency.ci_id, chunk))):
            nodes[ci_id]["used_by"].append(agency_id)
    wanted = list(nodes) if named is None else [i for i in dict.fromkeys(named) if i in nodes]
    for i in range(0, len(wanted), CHUNK):
        for ci_id, name in _rows(session, select(ConfigItem.id, ConfigItem.name).where(
                among(session, ConfigItem.id, wanted[i:i + CHUNK]))):
            nodes[ci_id]["name"] = name
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
            service_types: list[str], visible: set[int] | None = None,
            named: int | None = 1000) -> Impact:
    """Walk from ``start`` and pick out the services and agencies reached; ``visible``
    (a requester's own CIs) hides the others from the answer, not from the walk. Names
    are loaded for the CIs on those paths and the first ``named`` CIs reached (None:
    all)."""
    result = walk(session, start, direction)
    order = sorted(result.parent, key=lambda c: (result.depth[c], c))
    nodes = load_nodes(session, order, named=[])
    services, agencies = [], {}
    for ci_id in order:
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
    needed = [*(order if named is None else order[:named + len(start)]),
              *(c for s in services for c in s["path"]),
              *(c for a in agencies.values() for c in a["path"])]
    for i in range(0, len(needed), CHUNK):
        chunk = [c for c in dict.fromkeys(needed[i:i + CHUNK]) if not nodes[c]["name"]]
        for ci_id, name in _rows(session, select(ConfigItem.id, ConfigItem.name).where(
                among(session, ConfigItem.id, chunk))):
            nodes[ci_id]["name"] = name
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
        for row in _rows(session, select(Relation.source_id, Relation.target_id, Relation.kind,
                                          Relation.dependent_id, Relation.provider_id)
                                   .where(among(session, Relation.source_id, ids[i:i + CHUNK]),
                                          Relation.removed_at.is_(None))):
            if row.target_id in layer:
                edges.append({"source": row.source_id, "target": row.target_id,
                              "kind": row.kind, "dependent": row.dependent_id,
                              "provider": row.provider_id})
    return {"layers": layer, "nodes": load_nodes(session, ids), "edges": edges,
            "truncated": up.truncated or down.truncated
            or len(up.depth) + len(down.depth) - 1 > len(layer)}
