"""What the browser test modules import: Playwright's ``expect``.

Importing this module skips the importing test module when ``playwright`` is not
installed; the ``browser`` fixture (conftest) skips when Debian's Chromium is missing.
"""

import pytest

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed: pip install playwright")
expect = playwright_api.expect
