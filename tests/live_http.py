"""A JSON call to a live test server (the ``live_server`` fixture), for the tests that
drive several writers at once over real HTTP."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def call(method: str, url: str, headers: dict, body: dict | None = None,
         etag: str | None = None) -> tuple[int, dict, str | None]:
    """``(status, JSON body, ETag)`` of one request; an error status is returned too."""
    sent = {"Content-Type": "application/json", **headers}
    if etag:
        sent["If-Match"] = etag
    request = urllib.request.Request(url, method=method, headers=sent,
                                     data=None if body is None else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read()), response.headers.get("ETag")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), None
