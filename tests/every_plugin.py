"""What the reliability and security tests share: an install with every built-in plugin
enabled and its demo data, and the served OpenAPI document read as a list of operations.

Nothing here names a plugin: the plugins are the ``itsm.plugins`` entry points that live
in the ``itsm`` package, the operations come from ``/api/v1/openapi.json``, and real path
values (record numbers, ids, keys) are read from the list operations beside them. A new
built-in plugin is covered the day it is registered.
"""

from __future__ import annotations

import importlib
import os
import re
from importlib.metadata import entry_points
from typing import Any

METHODS = ("get", "post", "put", "patch", "delete")
WRITES = ("post", "put", "patch")


def builtin_plugins() -> list:
    """Every built-in plugin module (entry points inside the ``itsm`` package).

    ``ITSM_TEST_SKIP_PLUGINS=a,b`` leaves plugins out while they are being written.
    """
    skipped = set(filter(None, os.environ.get("ITSM_TEST_SKIP_PLUGINS", "").split(",")))
    return [importlib.import_module(ep.value) for ep in entry_points(group="itsm.plugins")
            if ep.value.split(".")[0] == "itsm" and ep.name not in skipped]


def load_demo(runner) -> None:
    """Demo agencies (DOT, DOH), users and every enabled plugin's demo records."""
    result = runner.invoke(["demo"])
    assert result.exit_code == 0, result.output


def operations(document: dict) -> list[tuple[str, str, dict]]:
    """``(method, path template, operation)`` for every operation of the document."""
    return [(method, path, operation) for path, item in document["paths"].items()
            for method, operation in item.items() if method in METHODS]


def body_schema(operation: dict) -> dict | None:
    """The JSON request body schema of an operation, or None when it takes no JSON."""
    content = operation.get("requestBody", {}).get("content", {})
    return content.get("application/json", {}).get("schema") if content else None


def is_list(method: str, path: str, operation: dict, document: dict) -> bool:
    """A GET without path parameters whose success answer has ``items``."""
    if method != "get" or "{" in path:
        return False
    schema = _success_schema(operation, document)
    return "items" in (schema or {}).get("properties", {})


def _success_schema(operation: dict, document: dict) -> dict | None:
    for status, response in operation.get("responses", {}).items():
        if status.startswith("2"):
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            while schema and "$ref" in schema:
                schema = document["components"]["schemas"][schema["$ref"].split("/")[-1]]
            return schema
    return None


# A path parameter named like one of these is filled from the same key of the items of
# the list beside it (``/catalog/documents/{document_id}`` from ``/catalog/documents``).
ITEM_KEYS = ("number", "slug", "key", "code", "name", "id")


def path_values(client, headers: dict, document: dict) -> dict[str, dict[str, Any]]:
    """Real values for the path parameters of each template, read from the lists.

    Returns ``{template: {parameter: value}}``; a template whose parameters could not
    all be found is left out (the fuzzer then invents values, which mostly give 404).
    """
    items: dict[str, list[dict]] = {}
    for method, path, operation in operations(document):
        if is_list(method, path, operation, document):
            response = client.get(path, headers=headers)
            if response.status_code == 200:
                items[path] = [i for i in response.get_json()["items"] if isinstance(i, dict)]
    found: dict[str, dict[str, Any]] = {}
    for template, item in document["paths"].items():
        enums = {p["name"]: p["schema"]["enum"] for operation in item.values()
                 if isinstance(operation, dict) for p in operation.get("parameters", [])
                 if p.get("in") == "path" and "enum" in p.get("schema", {})}
        values: dict[str, Any] = {}
        for match in re.finditer(r"\{([^}]+)\}", template):
            name = match.group(1)
            base = template[:match.start()].rstrip("/")
            for earlier, value in values.items():
                base = base.replace(f"{{{earlier}}}", str(value))
            value = enums[name][0] if name in enums else _value_from(items.get(base, []), name)
            if value is None:
                break
            values[name] = value
        else:
            if values:
                found[template] = values
    return found


def _value_from(rows: list[dict], name: str) -> Any:
    keys = [name, "id"] if name.endswith("_id") else [name, *ITEM_KEYS]
    for row in rows:
        for key in keys:
            if key and isinstance(row.get(key), (str, int)) and row[key] != "":
                return row[key]
    return None


# -- the web pages -----------------------------------------------------------------------------

_HREF = re.compile(r'href="([^"#]*)')
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Never followed: leaving the site, signing out, files and the API (tested on its own).
_SKIP = re.compile(r"^(?!/)|^//|^/logout|/static/|^/api/|/attachments/\d+")


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF token"
    return found.group(1)


def crawl(client, start: str = "/home", limit: int = 400, per_shape: int = 2) \
        -> dict[str, str]:
    """The pages reachable by links from ``start`` with the client's session:
    ``{url: html}`` of the pages that answered 200 with HTML.

    Pages of one shape (the same path but for numbers and the query) are alike: only
    ``per_shape`` of each are opened, which keeps the walk short on a full install.
    """
    from html import unescape

    seen: dict[str, str] = {}
    queue = [start]
    visited: set[str] = set()
    shapes: dict[str, int] = {}
    while queue and len(visited) < limit:
        url = queue.pop(0)
        shape = re.sub(r"[A-Z]*\d+", "N", url.split("?")[0])
        if url in visited or shapes.get(shape, 0) >= per_shape:
            continue
        shapes[shape] = shapes.get(shape, 0) + 1
        visited.add(url)
        response = client.get(url)
        if response.status_code != 200 or response.mimetype != "text/html":
            continue
        html = response.get_data(as_text=True)
        seen[url] = html
        for link in _HREF.findall(html):
            link = unescape(link)
            if not _SKIP.search(link) and link not in visited:
                queue.append(link)
    return seen
