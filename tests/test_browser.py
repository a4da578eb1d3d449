"""The MLflow UI in a real headless browser: experiment -> run -> confusion-matrix artifact."""

import os
import shutil

import mlflow
import pytest
from servers import mlflow_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REQUIRED = os.environ.get("XRAYTRACK_REQUIRE_BROWSER") == "1"  # set by .ci/run

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM and not REQUIRED, reason="Debian chromium not installed"),
]

# Flags for a root, offline, headless machine (see the project's CI notes).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def test_ui_shows_the_run_and_its_confusion_matrix(trained, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    run = mlflow.get_run(trained["run_id"])
    # One worker: uvicorn's supervisor of several kills a worker that misses its 5-second health
    # check, and on a loaded machine (CI runs two test files at once) the page then shows
    # "Something went wrong" for the request that worker was serving.
    args = ["ui", "--host", "127.0.0.1", "--workers", "1", "--backend-store-uri", trained["uri"]]
    with mlflow_server(args, "/health", log_dir=tmp_path) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{base}/#/experiments/{run.info.experiment_id}/runs")
            page.get_by_text(run.info.run_name, exact=True).first.click(timeout=90_000)
            page.wait_for_url(f"**/runs/{run.info.run_id}**", timeout=60_000)
            page.get_by_role("tab", name="Artifacts").click()
            page.get_by_text("confusion_matrix.png", exact=True).first.click()
            preview = page.locator("img[src^='blob:']").first
            expect(preview).to_be_visible(timeout=60_000)
            assert preview.evaluate("img => img.naturalWidth") >= 1000  # the 12-inch figure loaded
        finally:
            page.screenshot(path=str(tmp_path / "ui.png"))
            browser.close()
