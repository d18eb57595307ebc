"""The benchmark's data: agencies, groups, agents and requesters, and N incidents as JSON Lines.

Deterministic for a seed. Incidents spread over 20 agencies, 30 groups and 500 agents
with a service desk's mix of states (most closed, about one in eight still open) and
priorities, created over the last two years (open ones in the last weeks), so queues,
searches and SLA clocks see realistic shapes.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

AGENCIES = 20
GROUPS = 30
AGENTS = 500
REQUESTERS = 2000
BENCH_AGENT = "bench.agent@bench.example"
BENCH_ADMIN = "bench.admin@bench.example"
OPEN_STATES = ("new", "in_progress", "on_hold")

# state -> share of all incidents
STATES = {"closed": 0.74, "resolved": 0.08, "cancelled": 0.05, "new": 0.04,
          "in_progress": 0.07, "on_hold": 0.02}
CATEGORIES = {
    "network": ["lan", "wan", "vpn", "wifi", "dns"],
    "hardware": ["laptop", "desktop", "printer", "phone", "monitor"],
    "software": ["email", "office", "erp", "browser", "operating_system"],
    "access": ["password", "account", "permissions", "mfa"],
}
SYMPTOMS = ["cannot connect to", "slow response from", "error when opening", "crash in",
            "no access to", "timeout reaching", "login fails on", "data missing in",
            "wrong totals in", "cannot print from", "frozen screen in", "sync broken for"]
THINGS = {
    "network": ["the VPN gateway", "wifi on floor {n}", "the branch office link", "DNS",
                "the proxy", "the file server share"],
    "hardware": ["my laptop", "the printer {host}", "the docking station", "desk phone",
                 "the second monitor", "the badge reader"],
    "software": ["Outlook", "the ERP invoicing module", "Excel macros", "the browser",
                 "Teams meetings", "the payroll application", "SharePoint"],
    "access": ["my account", "the MFA token", "the finance folder", "password reset",
               "the HR portal", "the shared mailbox"],
}
WORDS = ("since this morning after the update the user reports that the screen shows an "  # noqa: SIM905
         "error code and the work is blocked for the whole team please check the server "
         "logs and the recent change on the network switch the issue started yesterday "
         "afternoon and happens every time customer waiting invoice deadline today").split()
# impact x urgency -> priority (1 highest), as itsm's incident plugin ranks them
PRIORITY = [[1, 2, 3], [2, 3, 4], [3, 4, 5]]
SEARCHES = ["vpn", "printer", "outlook crash", "payroll", "timeout", "mfa token",
            "invoice deadline", "badge reader", "sharepoint", "docking station"]


def hosts(rng: random.Random) -> list[str]:
    return [f"{rng.choice(['prn', 'srv', 'app', 'db', 'mail'])}-{i:03d}" for i in range(300)]


def agent_email(i: int) -> str:
    return f"agent{i:03d}@bench.example"


def requester_email(i: int) -> str:
    return f"user{i:04d}@agency{i % AGENCIES + 1:02d}.example"


def group_name(i: int) -> str:
    return f"Resolver {i + 1:02d}"


def agency_code(i: int) -> str:
    return f"AG{i + 1:02d}"


def setup_people(itsm) -> dict[str, str]:
    """Create agencies, groups, agents (in groups), requesters, and the two bench users;
    return API tokens for ``agent`` and ``admin``. Run once on an empty install."""
    from itsm.core.auth import create_token, create_user
    from itsm.core.models import Agency, Group, GroupMember

    with itsm.Session() as session:
        agencies = [Agency(code=agency_code(i), name=f"Agency {i + 1}") for i in range(AGENCIES)]
        groups = [Group(name=group_name(i)) for i in range(GROUPS)]
        session.add_all(agencies + groups)
        session.flush()
        for i in range(AGENTS):
            user = create_user(session, agent_email(i), role="agent", name=f"Agent {i}")
            session.add(GroupMember(group_id=groups[i % GROUPS].id, user_id=user.id))
        for i in range(REQUESTERS):
            create_user(session, requester_email(i), role="requester", name=f"User {i}",
                        agency=agency_code(i % AGENCIES))
        agent = create_user(session, BENCH_AGENT, role="agent", name="Bench agent")
        for group in groups:
            session.add(GroupMember(group_id=group.id, user_id=agent.id))
        admin = create_user(session, BENCH_ADMIN, role="admin", name="Bench admin")
        session.flush()
        tokens = {"agent": create_token(session, agent, name="bench", days=30)[1],
                  "admin": create_token(session, admin, name="bench", days=30)[1]}
        session.commit()
    return tokens


def tokens_for(itsm) -> dict[str, str]:
    """New API tokens of the two bench users of an install ``setup_people`` made."""
    from sqlalchemy import select

    from itsm.core.auth import create_token
    from itsm.core.models import User

    with itsm.Session() as session:
        tokens = {}
        for key, email in (("agent", BENCH_AGENT), ("admin", BENCH_ADMIN)):
            user = session.scalar(select(User).where(User.email == email))
            tokens[key] = create_token(session, user, name="bench", days=1)[1]
        session.commit()
    return tokens


def incident(rng: random.Random, now: datetime, host_names: list[str]) -> dict:
    state = rng.choices(list(STATES), weights=list(STATES.values()))[0]
    category = rng.choice(list(CATEGORIES))
    thing = rng.choice(THINGS[category]).format(n=rng.randint(1, 9),
                                                host=rng.choice(host_names))
    title = f"{rng.choice(SYMPTOMS).capitalize()} {thing}"
    description = " ".join(rng.choices(WORDS, k=rng.randint(12, 30))) + \
        f" (host {rng.choice(host_names)}, error 0x{rng.randint(0, 0xFFFF):04X})"
    age = timedelta(days=rng.uniform(0, 21)) if state in OPEN_STATES \
        else timedelta(days=rng.uniform(1, 730))
    created = now - age
    updated = min(now, created + timedelta(hours=rng.expovariate(1 / 20)))
    requester = rng.randrange(REQUESTERS)
    group = rng.randrange(GROUPS)
    row = {"title": title, "description": description, "category": category,
           "subcategory": rng.choice(CATEGORIES[category]),
           "impact": rng.choices([1, 2, 3], weights=[1, 3, 8])[0],
           "urgency": rng.choices([1, 2, 3], weights=[1, 4, 6])[0],
           "channel": rng.choice(["portal", "email", "phone", "api", "monitoring"]),
           "requester": requester_email(requester), "group": group_name(group),
           "state": state, "created_at": created.isoformat(), "updated_at": updated.isoformat()}
    if state != "new":
        # an agent of the record's group
        row["assignee"] = agent_email(group + GROUPS * rng.randrange(AGENTS // GROUPS))
    if state in ("resolved", "closed"):
        row["resolution_code"] = rng.choice(["solved", "workaround", "user_error"])
        row["resolution_notes"] = "Fixed: " + " ".join(rng.choices(WORDS, k=8))
    if state == "on_hold":
        row["hold_kind"], row["hold_reason"] = "customer", "waiting for the user's reply"
    if rng.random() < 0.3:
        row["comments"] = [{"body": " ".join(rng.choices(WORDS, k=10)),
                            "public": rng.random() < 0.5, "at": updated.isoformat()}]
    return row


def create_bodies(count: int, *, seed: int = 42) -> list[dict]:
    """``count`` bodies of ``POST /api/v1/incidents`` drawn as the loaded incidents are:
    the create load writes new incidents about the same mix of topics, so a search run
    after it finds them at the usual density (every body alike would make the newest
    records a block that no searched word but its own matches)."""
    rng = random.Random(seed + 1)
    host_names = hosts(rng)
    now = datetime.now(UTC)
    bodies = []
    for _ in range(count):
        row = incident(rng, now, host_names)
        bodies.append({key: row[key] for key in ("title", "description", "category",
                                                 "subcategory", "impact", "urgency",
                                                 "group")})
    return bodies


def write_incidents(path: Path, count: int, *, seed: int = 42,
                    now: datetime | None = None) -> Path:
    """Write ``count`` incidents, oldest first (ids then follow age, as in a real desk)."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    host_names = hosts(rng)
    rows = [incident(rng, now, host_names) for _ in range(count)]
    rows.sort(key=lambda r: r["created_at"])
    with path.open("w", encoding="utf-8") as out:
        for row in rows:
            out.write(json.dumps(row, separators=(",", ":")) + "\n")
    return path
