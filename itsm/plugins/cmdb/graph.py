"""Impact analysis: a breadth-first walk of the relation graph that keeps, for each CI
reached, its parent on a shortest path and its depth, then the services and agencies
among the CIs reached, each with one path.

On PostgreSQL the whole walk is one recursive query: each step of the recursion is a
level of the walk, carried as arrays (the level's CIs, their parents, and every CI seen
so far, which a hashed ``NOT IN`` keeps out of the next level, so a cycle ends the walk).
The database does the index look-ups and the driver brings back one row per level; a hub
that reaches thousands of CIs is one round trip (bench/cmdb_graph.py). Elsewhere (SQLite)
the same walk is one query per level per 5,000 CIs of the level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Integer, any_, bindparam, func, literal, or_, select, true
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from itsm.plugins.cmdb.models import RELATION_KINDS, CiAgency, ConfigItem, Relation

CHUNK = 5000
MAX_DEPTH = 40
MAX_NODES = 50000


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def among(session: Session, column, ids: list[int]):
    """``column IN ids``; on PostgreSQL ``column = ANY(:array)``, one parameter however
    many ids (the driver parses a statement of thousands of placeholders slowly)."""
    if _postgresql(session):
        if isinstance(column.type, Integer):
            return column == any_(bindparam(None, [int(i) for i in ids], type_=ARRAY(Integer)))
        return column == any_(bindparam(None, [str(i) for i in ids], type_=ARRAY(column.type)))
    return column.in_(ids)


def _rows(session: Session, query) -> Any:
    """Core rows of ``query`` on the session's connection (no ORM row processing)."""
    return session.connection().execute(query).all()


@dataclass
class Walk:
    """What a walk reached: for each CI its parent on a shortest path (None for a start)
    and its depth."""

    start: list[int]
    parent: dict[int, int | None] = field(default_factory=dict)
    depth: dict[int, int] = field(default_factory=dict)
    truncated: bool = False
    # The services and the CIs of an agency among the CIs reached, when asked for.
    telling: set[int] = field(default_factory=set)

    def path(self, ci_id: int) -> list[int]:
        """The CIs from a start to ``ci_id``, both included."""
        out = [ci_id]
        while (step := self.parent.get(out[-1])) is not None:
            out.append(step)
        return out[::-1]

    def order(self) -> list[int]:
        """Every CI reached, nearest first (then by id)."""
        return sorted(self.parent, key=lambda c: (self.depth[c], c))


def _ends(direction: str):
    """The column a step leaves from and the one it arrives at."""
    if direction == "impact":
        return Relation.provider_id, Relation.dependent_id
    return Relation.dependent_id, Relation.provider_id


def _telling_condition(service_types: list[str] | None, agencies: bool):
    """The SQL condition of a telling CI: of a service type, or (``agencies``) of an
    agency; None when nothing is asked for."""
    wanted = [ConfigItem.type_key.in_(service_types)] if service_types else []
    if agencies:
        wanted.append(ConfigItem.agency_id.is_not(None))
    return or_(*wanted) if wanted else None


Level = tuple[int, list[int], list[int], list[int]]


def _levels_postgresql(session: Session, start: list[int], direction: str, max_depth: int,
                       max_nodes: int, telling: Any, agencies: bool) -> list[Level]:
    """``(depth, ids, parents, telling ids)`` per level, the whole walk in one recursive
    query (see the module's docstring). It stops after the level that passes
    ``max_nodes`` CIs or at ``max_depth`` + 1 (that level tells the caller the walk was
    cut short). ``telling`` (a condition on the CI) and ``agencies`` (used by one) pick
    the telling CIs of each level."""
    here, there = _ends(direction)
    first = bindparam("start", start, type_=ARRAY(Integer))
    levels = select(literal(0).label("depth"), first.label("ids"), first.label("parents"),
                    first.label("seen")).cte("walk_levels", recursive=True)
    previous = levels.alias("previous")
    # One row per CI of the next level, with its lowest-numbered parent: GROUP BY keeps
    # the level free of duplicates, NOT IN (hashed) keeps out every CI already seen.
    step = (select(there.label("id"), func.min(here).label("parent"))
            .where(here == any_(previous.c.ids), Relation.removed_at.is_(None),
                   there.not_in(select(func.unnest(previous.c.seen).column_valued())
                                .scalar_subquery()))
            .group_by(there).correlate(previous).lateral("step"))
    level = select(func.array_agg(step.c.id).label("ids"),
                   func.array_agg(step.c.parent).label("parents")).lateral("level")
    levels = levels.union_all(
        select(previous.c.depth + 1, level.c.ids, level.c.parents,
               func.array_cat(previous.c.seen, level.c.ids))
        .select_from(previous.join(level, true()))
        .where(level.c.ids.is_not(None), previous.c.depth < max_depth + 1,
               func.cardinality(previous.c.seen) <= max_nodes))
    query = select(levels.c.depth, levels.c.ids, levels.c.parents)
    if telling is not None:
        # The telling CIs (services, CIs of an agency) among all those reached, picked
        # out here in one look-up, so the thousands of others a hub reaches never travel
        # back to the database: one more row, at depth -1.
        reached = select(func.unnest(levels.c.ids)).select_from(levels)
        found = select(ConfigItem.id).where(ConfigItem.id.in_(reached), telling)
        if agencies:
            found = found.union(select(CiAgency.ci_id).where(CiAgency.ci_id.in_(reached)))
        query = query.union_all(select(literal(-1), func.array(found.scalar_subquery()),
                                       first))
    rows = sorted(_rows(session, query), key=lambda row: row[0])
    if telling is None:
        return [(depth, list(ids), list(parents), []) for depth, ids, parents in rows]
    return [(-1, [], [], list(rows[0][1])),
            *((depth, list(ids), list(parents), []) for depth, ids, parents in rows[1:])]


def _levels_by_query(session: Session, start: list[int], direction: str, max_depth: int,
                     max_nodes: int, telling: Any, agencies: bool) -> list[Level]:
    """The same levels as :func:`_levels_postgresql`, one query per level (per 5,000),
    and one per level for its telling CIs."""
    here, there = _ends(direction)
    seen = set(start)
    out = [(0, list(start), list(start))]
    frontier = list(start)
    depth = 0
    while frontier and depth <= max_depth and len(seen) <= max_nodes:
        depth += 1
        parents: dict[int, int] = {}
        for i in range(0, len(frontier), CHUNK):
            for origin, reached in _rows(session, select(here, there).where(
                    among(session, here, frontier[i:i + CHUNK]),
                    Relation.removed_at.is_(None))):
                if reached not in seen and (reached not in parents
                                            or origin < parents[reached]):
                    parents[reached] = origin
        if not parents:
            break
        frontier = sorted(parents)
        seen.update(frontier)
        out.append((depth, frontier, [parents[c] for c in frontier]))
    return [(d, ids, up, _telling(session, ids, telling, agencies) if telling is not None
             else []) for d, ids, up in out]


def walk(session: Session, start: list[int], direction: str = "impact",
         max_depth: int = MAX_DEPTH, max_nodes: int = MAX_NODES,
         service_types: list[str] | None = None) -> Walk:
    """Everything that relies on ``start`` (``impact``) or that ``start`` relies on
    (``depends``), with a shortest path to each, at most ``max_nodes`` CIs (nearest
    first) and ``max_depth`` steps; ``truncated`` tells when the walk was cut short.
    With ``service_types``, ``telling`` holds the services reached and (impact) the CIs
    an agency owns or uses."""
    result = Walk(start=list(dict.fromkeys(start)))
    if not result.start:
        return result
    agencies = direction == "impact" and service_types is not None
    levels = (_levels_postgresql if _postgresql(session) else _levels_by_query)(
        session, result.start, direction, max_depth, max_nodes,
        _telling_condition(service_types, agencies), agencies)
    for depth, ids, parents, telling in levels:
        result.telling.update(telling)
        if depth < 0:  # the telling CIs of the whole walk, no level
            continue
        if depth > max_depth:
            result.truncated = True
            break
        for ci_id, parent in sorted(zip(ids, parents, strict=True)):
            if ci_id in result.parent:
                continue
            if len(result.parent) >= max_nodes + len(result.start):
                result.truncated = True
                break
            result.parent[ci_id] = None if depth == 0 else parent
            result.depth[ci_id] = depth
    return result


def load_nodes(session: Session, ids: list[int], *, users: bool = True) \
        -> dict[int, dict[str, Any]]:
    """id -> name, type, lifecycle, agency, users (unless ``users`` is False: the
    agencies using a CI only matter where the walk looks for them) and service id of the
    CIs ``ids``."""
    nodes: dict[int, dict[str, Any]] = {}
    ids = list(dict.fromkeys(ids))
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        # Plain tuples: a hub's paths name thousands of CIs, and a Row's attribute
        # access costs more than the rest of building the dict.
        for ci_id, name, type_key, lifecycle, agency_id, service_id in _rows(session, select(
                ConfigItem.id, ConfigItem.name, ConfigItem.type_key, ConfigItem.lifecycle,
                ConfigItem.agency_id, ConfigItem.service_id).where(
                among(session, ConfigItem.id, chunk))):
            nodes[ci_id] = {"id": ci_id, "name": name, "type": type_key,
                            "lifecycle": lifecycle, "agency_id": agency_id,
                            "service_id": service_id, "used_by": []}
        if not users:
            continue
        for ci_id, agency_id in _rows(session, select(CiAgency.ci_id, CiAgency.agency_id)
                                      .where(among(session, CiAgency.ci_id, chunk))
                                      .order_by(CiAgency.ci_id, CiAgency.agency_id)):
            nodes[ci_id]["used_by"].append(agency_id)
    return nodes


def _telling(session: Session, ids: list[int], telling: Any, agencies: bool) -> list[int]:
    """Which of ``ids`` meet ``telling`` or (``agencies``) are used by an agency."""
    out: set[int] = set()
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i:i + CHUNK]
        out.update(session.connection().scalars(select(ConfigItem.id).where(
            among(session, ConfigItem.id, chunk), telling)))
        if agencies:
            out.update(session.connection().scalars(select(CiAgency.ci_id).where(
                among(session, CiAgency.ci_id, chunk))))
    return list(out)


@dataclass
class Impact:
    """The result of an analysis: the CIs reached, the services and the agencies among
    them, each with its path from the start. ``nodes`` holds the CIs on those paths and
    the first CIs reached (see :func:`analyse`), not every CI of a large walk."""

    walk: Walk
    nodes: dict[int, dict[str, Any]]
    services: list[dict[str, Any]]
    agencies: list[dict[str, Any]]


def analyse(session: Session, start: list[int], direction: str,
            service_types: list[str], visible: set[int] | None = None,
            named: int | None = 200) -> Impact:
    """Walk from ``start`` and pick out the services and agencies reached; ``visible``
    (a requester's own CIs) hides the others from the answer, not from the walk.
    ``nodes`` holds the CIs on those paths and the first ``named`` CIs reached, nearest
    first (None: all of them)."""
    result = walk(session, start, direction, service_types=service_types)
    order = result.order()
    depth = result.depth
    telling = sorted((c for c in result.telling if c in depth), key=lambda c: (depth[c], c))
    found = load_nodes(session, telling)
    services, agencies = [], {}
    for ci_id in telling:
        node = found.get(ci_id)
        if node is None or (visible is not None and ci_id not in visible):
            continue
        if node["type"] in service_types and ci_id not in result.start:
            services.append({"ci": node, "path": result.path(ci_id)})
        if direction != "impact":
            continue
        for agency_id in [node["agency_id"], *node["used_by"]]:
            if agency_id is not None and agency_id not in agencies:
                agencies[agency_id] = {"agency_id": agency_id, "path": result.path(ci_id)}
    listed = order if named is None else order[:named + len(result.start)]
    needed = [*(c for s in services for c in s["path"]),
              *(c for a in agencies.values() for c in a["path"]), *listed]
    nodes = found | load_nodes(session, [c for c in dict.fromkeys(needed) if c not in found],
                               users=False)
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
