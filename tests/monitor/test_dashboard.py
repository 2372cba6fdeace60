"""The dashboard in a real headless Chromium: live numbers after traffic, failed models, unload/load.

Drives Debian's ``/usr/bin/chromium`` through Playwright's Python API (the pip wheel's
driver; no browser download). Skips only where Chromium or Playwright is missing; CI has
both (``.ci/run`` installs Chromium). The screenshot goes to the test's tmp dir and to
``test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import re
import shutil
import threading
from pathlib import Path

import httpx
import pytest
from monitor_helpers import normalized
from serve_helpers import real_server, v2_body

from torchship.monitor import MonitorConfig
from torchship.serve import Security, ServeConfig

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)
if not Path(CHROMIUM).exists():
    pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium); CI installs it", allow_module_level=True)


@pytest.fixture
def dashboard_repo(digits_repo, tmp_path) -> Path:
    """digits/1 that serves, and broken/1 whose manifest cannot be read."""
    root = tmp_path / "repo"
    shutil.copytree(digits_repo, root)
    (root / "broken" / "1").mkdir(parents=True)
    (root / "broken" / "1" / "manifest.json").write_text("{not json")
    return root


def _traffic(url: str, x, stop: threading.Event) -> None:
    with httpx.Client(base_url=url, timeout=30) as client:
        i = 0
        while not stop.is_set():
            client.post("/v2/models/digits/infer", json=v2_body(x[i % len(x) : i % len(x) + 4]))
            i += 4


def test_dashboard_shows_live_numbers_failures_and_manages_models(
    dashboard_repo, digits_artifact, digits_raw, tmp_path
):
    config = ServeConfig(
        access_log=False,
        strict_readiness=False,  # broken/1 must not hold readiness
        monitor=MonitorConfig(min_rows=64, max_rows_per_s=1e6),
    )
    x = normalized(digits_artifact, digits_raw[0][-400:])
    expect = sync_api.expect
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(20_000)
            with real_server(dashboard_repo, config, Security(management_token="s3cret")) as url:
                stop = threading.Event()
                sender = threading.Thread(target=_traffic, args=(url, x, stop), daemon=True)
                sender.start()
                try:
                    page.goto(url + "/?interval=0.5")
                    digits = page.locator('section[data-model="digits"][data-version="1"]')
                    expect(digits.locator(".throughput .value")).to_have_text(
                        re.compile(r"^[1-9][\d,.]* req/s")
                    )
                    expect(digits.locator(".p50 .value")).to_have_text(re.compile(r"^\d+\.\d+ ms"))
                    expect(digits.locator("[data-drift-status]")).to_have_text("ok")
                    expect(digits.locator('tr[data-score="input_psi:channel0"] td.num').first).to_have_text(
                        re.compile(r"^0\.0\d\d$")
                    )
                    broken = page.locator('section[data-model="broken"]')
                    expect(broken.locator('[data-field="state"]')).to_have_text("UNAVAILABLE")
                    expect(broken.locator('[data-field="reason"]')).to_contain_text("manifest.json")
                finally:
                    stop.set()
                    sender.join(10)
                ARTIFACTS.mkdir(exist_ok=True)
                shot = page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
                (ARTIFACTS / "dashboard.png").write_bytes(shot)
                assert shot[:8] == b"\x89PNG\r\n\x1a\n"

                card = 'section[data-model="digits"]'
                page.locator(
                    f'{card} button[data-action="unload"]'
                ).click()  # no token yet: refused, and said so
                expect(page.locator("#banner")).to_contain_text(
                    "unload digits failed: missing or wrong bearer token"
                )
                page.fill("#token", "s3cret")
                page.locator("#token").dispatch_event("change")
                page.locator(f'{card} button[data-action="unload"]').click()
                expect(page.locator(f'{card} [data-field="state"]')).to_have_text("UNAVAILABLE")
                page.locator(f'{card} button[data-action="load"]').click()
                expect(page.locator(f'{card} [data-field="state"]')).to_have_text("READY")
            # the server is gone: the page keeps its last numbers and says it cannot reach the server
            expect(page.locator("#banner")).to_contain_text("the server is unreachable")
            expect(page.locator("#server-state")).to_have_text("unreachable")
            expect(page.locator(f'{card} [data-field="state"]')).to_have_text("READY")
        finally:
            browser.close()
