"""Accessibility checks for the browser tests: axe-core run inside the page.

Use::

    from accessibility import assert_no_serious_violations, axe_context

    context = axe_context(browser, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(url)
    assert_no_serious_violations(page)

axe-core is the npm package of ``tests/browser/package.json`` (``npm install --prefix
tests/browser``; ``.ci/run`` does it); a test module that uses it is skipped when it is
not installed. The pages' Content-Security-Policy allows only the application's own
scripts, so axe goes in through Playwright in a context made with ``bypass_csp=True``
(:func:`axe_context`); check the policy itself in an ordinary context.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

AXE = Path(__file__).parent / "browser" / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")


def axe_context(browser, **options: Any):
    """A new browser context into whose pages axe can be injected (``bypass_csp``)."""
    if not AXE.exists():
        pytest.skip("axe-core is not installed: npm install --prefix tests/browser "
                    "--no-audit --no-fund")
    return browser.new_context(bypass_csp=True, **options)


def violations(page, impacts: tuple[str, ...] = SERIOUS,
               rules: dict[str, bool] | None = None) -> list[dict[str, Any]]:
    """axe's violations of ``impacts`` on the page as it is now: ``id``, ``impact``,
    ``help`` and the ``targets`` (CSS selectors) of each. ``rules`` turns axe rules on or
    off by id (``{"color-contrast": False}``)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    options = {"resultTypes": ["violations"]}
    if rules:
        options["rules"] = {rule: {"enabled": on} for rule, on in rules.items()}
    results = page.evaluate("options => window.axe.run(document, options)", options)
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "targets": [", ".join(map(str, node["target"])) for node in v["nodes"]][:10]}
            for v in results["violations"] if v["impact"] in impacts]


def assert_no_serious_violations(page, rules: dict[str, bool] | None = None) -> None:
    """Fail, listing each, when axe finds serious or critical violations on the page."""
    found = violations(page, rules=rules)
    assert found == [], f"accessibility violations on {page.url}:\n" + "\n".join(
        json.dumps(v) for v in found)
