"""The report in a real headless browser: no console errors, every image rendered, nothing fetched.

Skipped when Chromium, chromium-driver or selenium is missing, unless LLMSIM_REQUIRE_BROWSER=1 (as in CI),
where a missing part fails the test instead. A broken page is checked too, so the checks can fail.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .browser import REQUIRE_ENV, browser_required, check_page, missing_parts, start_driver


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    """One headless Chromium for the module, with a fresh profile folder."""
    missing = missing_parts()
    if missing:
        message = f"headless browser test needs: {', '.join(missing)}"
        if browser_required():
            pytest.fail(f"{message} ({REQUIRE_ENV}=1)")
        pytest.skip(message)
    drv = start_driver(tmp_path_factory.mktemp("chromium-profile"))
    yield drv
    drv.quit()


def test_comparison_report_renders_without_errors(driver, comparison: Path):
    check = check_page(driver, comparison)
    assert check.title == "llmsim report: continuous vs chunked"
    assert check.severe == []
    assert len(check.images) == 6 and check.broken_images == []
    assert all(w >= 300 and h >= 100 for _, w, h, _ in check.images)
    assert check.requested, "the performance log saw no request for the page itself"
    outside = [u for u in check.requested if not u.startswith(("file:", "data:"))]
    assert outside == []


def test_single_run_report_renders_without_errors(driver, single: Path):
    check = check_page(driver, single)
    assert check.severe == [] and check.broken_images == [] and len(check.images) == 5


def test_the_checks_catch_a_broken_page(driver, tmp_path: Path):
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><title>broken</title><link rel="icon" href="data:,"></head><body>'
                    '<img src="data:image/png;base64,iVBORw0KGgoAAAAN"><img src="missing.png">'
                    "<script>console.error('boom')</script></body></html>")
    check = check_page(driver, page)
    assert len(check.broken_images) == 2
    assert any("boom" in m for m in check.severe)
    assert any(u.endswith("missing.png") for u in check.requested)
