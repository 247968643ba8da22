"""The catalog as an analyst sees it: headless Chromium (Debian's, driven by Playwright) opens the
Dagster UI, searches for fct_sales, opens its page and finds its description, owner, column
schema and checks there. The page is saved as a screenshot in the test's folder.

What the page shows comes from the definitions, so the webserver runs on an empty state folder
of its own (no demo lake needed, and none to protect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import require
from dagster_ui import free_port, server_env, start_ui

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FCT_SALES = ["gold", "retail", "fct_sales"]


def _expected() -> dict[str, Any]:
    """What the definitions say about fct_sales: the page must show it."""
    import dagster as dg

    from lakehouse.definitions import build_definitions

    graph = build_definitions().resolve_asset_graph()
    key = dg.AssetKey(FCT_SALES)
    node = graph.get(key)
    schema = node.metadata["dagster/column_schema"]
    return {
        "description": node.description.split(".")[0],
        "owners": list(node.owners),
        "columns": [c.name for c in getattr(schema, "value", schema).columns],
        "checks": sorted(c.name for c in graph.asset_check_keys if c.asset_key == key),
    }


def test_the_catalog_shows_fct_sales_with_its_description_owner_columns_and_checks(lake_env, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    require(CHROMIUM.is_file(), f"{CHROMIUM} is missing: apt-get install -y chromium chromium-driver")
    expected = _expected()
    home = lake_env
    ui = start_ui(
        home,
        server_env(home, {}),
        port=free_port(),
        daemon=False,
        read_only=True,
        instance_yaml=None,
    )
    try:
        with playwright.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
            page = browser.new_page(viewport={"width": 1600, "height": 2400})
            page.set_default_timeout(120_000)  # a loaded 2-core CI machine
            # the first visit shows a "join the community" dialog, whenever it is ready: dismiss it
            welcome = page.get_by_role("button", name="Skip", exact=True)
            page.add_locator_handler(welcome, lambda button: button.click())
            page.goto(f"{ui.url}/assets")
            page.wait_for_load_state("networkidle")
            page.get_by_role("button", name="Search").first.click()  # the catalog search (also "/")
            page.keyboard.type("fct_sales")
            result = page.locator("a[href$='/assets/gold/retail/fct_sales']").first
            result.wait_for()
            # click the result itself: under load the list may still be updating when Enter would
            # pick "the first result" (a CI run timed out waiting for the page after Enter)
            result.click()
            page.wait_for_url("**/assets/gold/retail/fct_sales")
            page.get_by_text(expected["description"], exact=False).first.wait_for()
            page.get_by_text("margin_amount", exact=True).first.wait_for()
            overview = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "fct_sales.png"), full_page=True)
            page.get_by_text("Checks", exact=True).first.click()  # the tab
            for check in expected["checks"]:  # the tab renders its rows progressively (slowly under load)
                page.get_by_text(check, exact=True).first.wait_for()
            checks = page.inner_text("body")
            page.screenshot(path=str(tmp_path / "fct_sales_checks.png"), full_page=True)
            browser.close()
    finally:
        ui.stop()
    assert (tmp_path / "fct_sales.png").stat().st_size > 10_000
    assert expected["description"] in overview
    # the UI shows an owner team without its "team:" prefix
    assert all(owner.removeprefix("team:") in overview for owner in expected["owners"]), expected["owners"]
    missing_columns = [c for c in expected["columns"] if c not in overview]
    assert missing_columns == [], f"columns not on the page: {missing_columns}\n{overview[:3000]}"
    missing_checks = [c for c in expected["checks"] if c not in checks]
    assert missing_checks == [], f"checks not on the Checks tab: {missing_checks}\n{checks[:3000]}"
