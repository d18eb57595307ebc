"""Hostile bodies and queries against every documented operation, every built-in plugin
enabled: each one gets a clear 4xx in the JSON error shape, never a 5xx.

The operations come from the served OpenAPI document, so a plugin's new route is covered
the day it is documented: every operation that takes a JSON body gets an oversized body
(413), deeply nested JSON, invalid UTF-8 and broken JSON (422), and the wrong content type
(415); every list gets huge and negative page sizes and forged cursors (422 where the
list documents them, never a 5xx where it does not); every upload an oversized file (413).
``tests/test_api_errors.py`` holds the detailed cases of the core's own routes.
"""

from __future__ import annotations

import base64
import io
import json

import every_plugin
import pytest

MAX_BODY = 64 * 1024


@pytest.fixture
def itsm_plugins():
    return every_plugin.builtin_plugins()


@pytest.fixture
def itsm_config(itsm_config):
    """A small body limit, so that "too large" is cheap to send to every operation."""
    return {**itsm_config, "api.max_body_bytes": MAX_BODY}


@pytest.fixture
def install(app, client, runner, make_token):
    """The demo install: the document, an admin and real path values."""
    every_plugin.load_demo(runner)
    admin = make_token("bad-input-admin@example.org", role="admin")
    document = client.get("/api/v1/openapi.json").get_json()
    return {"document": document, "admin": admin,
            "paths": every_plugin.path_values(client, admin, document)}


def url_of(template: str, values: dict) -> str | None:
    if "{" not in template:
        return template
    known = values.get(template)
    return template.format(**known) if known else None


def error_shape(response) -> str | None:
    """Why ``response`` is not a JSON error of this API, or None when it is one."""
    if not response.is_json:
        return f"not JSON but {response.mimetype}"
    body = response.get_json()
    error = body.get("error") if isinstance(body, dict) else None
    if not (isinstance(error, dict) and error.get("code") and error.get("message")):
        return f"not the error shape: {str(body)[:200]}"
    return None


DEEP = "[" * 20_000 + "]" * 20_000
HOSTILE_BODIES = {
    # name: (raw body, content type, the statuses that are a clear answer)
    "oversized": (json.dumps({"title": "x", "description": "a" * MAX_BODY}),
                  "application/json", {413}),
    "deep nesting": (DEEP, "application/json", {422}),
    "deep nesting in a field": ('{"title": "x", "description": ' + DEEP + "}",
                                "application/json", {422}),
    "invalid UTF-8": (b'{"title": "caf\xe9 \xff\xfe"}', "application/json", {422}),
    "broken JSON": ('{"title": "x"', "application/json", {422}),
    "JSON array": ("[]", "application/json", {422}),
    "text/plain": ('{"title": "x"}', "text/plain", {415}),
    "form": ("title=x", "application/x-www-form-urlencoded", {415}),
    "XML": ("<title>x</title>", "application/xml", {415}),
}


def test_every_json_operation_answers_hostile_bodies_with_a_clear_4xx(client, install):
    document, admin = install["document"], install["admin"]
    failures, tried, operations = [], 0, 0
    for method, template, operation in every_plugin.operations(document):
        if every_plugin.body_schema(operation) is None:
            continue
        url = url_of(template, install["paths"])
        if url is None:
            continue
        operations += 1
        for name, (raw, content_type, clear) in HOSTILE_BODIES.items():
            response = client.open(url, method=method.upper(), data=raw,
                                   content_type=content_type, headers=admin)
            tried += 1
            problem = error_shape(response)
            if response.status_code not in clear or problem:
                failures.append(f"{method.upper()} {template} {name}: {response.status_code} "
                                f"{problem or response.get_data(as_text=True)[:200]}")
    assert operations >= 20, "the document should have many JSON operations"
    assert failures == [], f"{len(failures)} of {tried}:\n" + "\n".join(failures)


def _forged(value) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


HUGE_PAGES = ["1000000000000", "99999999999999999999999", "-1", "0", "1e3", "ten"]
BAD_CURSORS = ["garbage!", "a" * 2000, _forged([10**30, 1]), _forged({"t": None}),
               "%00", _forged(["\u0000", 1])]


def test_every_list_refuses_huge_pages_and_forged_cursors(client, install, make_token):
    document = install["document"]
    requester = make_token("pat@dot.demo.invalid", role="requester", agency="DOT")
    failures, lists = [], 0
    for method, template, operation in every_plugin.operations(document):
        if not every_plugin.is_list(method, template, operation, document):
            continue
        lists += 1
        documented = {p["name"] for p in operation.get("parameters", [])}
        probes = [("limit", v) for v in HUGE_PAGES] + [("cursor", v) for v in BAD_CURSORS]
        for name, value in probes:
            for headers in (install["admin"], requester):
                response = client.get(template, query_string={name: value}, headers=headers)
                status = response.status_code
                if name in documented:
                    # Documented: the value is checked (or, for a cursor, may point
                    # nowhere and find nothing); a requester may be refused outright.
                    ok = status in (401, 403, 404, 422) or (name == "cursor" and status == 200)
                    if status == 422:
                        fields = (response.get_json().get("error") or {}).get("fields", {})
                        ok = name in fields
                else:
                    ok = status < 500
                if not ok or (status >= 400 and error_shape(response)):
                    failures.append(f"GET {template}?{name}={value[:30]}: {status} "
                                    f"{response.get_data(as_text=True)[:200]}")
    assert lists >= 10, "the document should have many lists"
    assert failures == [], "\n".join(failures)


def test_every_upload_over_the_body_limit_is_413(client, install):
    failures, uploads = [], 0
    for method, template, operation in every_plugin.operations(install["document"]):
        content = operation.get("requestBody", {}).get("content", {})
        if "multipart/form-data" not in content:
            continue
        url = url_of(template, install["paths"])
        if url is None:
            continue
        uploads += 1
        response = client.open(url, method=method.upper(), headers=install["admin"],
                               data={"file": (io.BytesIO(b"x" * (MAX_BODY + 1)), "big.bin")},
                               content_type="multipart/form-data")
        if response.status_code != 413 or error_shape(response):
            failures.append(f"{method.upper()} {template}: {response.status_code}")
        sent_json = client.open(url, method=method.upper(), headers=install["admin"],
                                json={"file": "not a file"})
        if sent_json.status_code not in (400, 415, 422) or error_shape(sent_json):
            failures.append(f"{method.upper()} {template} as JSON: {sent_json.status_code}")
    assert uploads >= 1
    assert failures == [], "\n".join(failures)
