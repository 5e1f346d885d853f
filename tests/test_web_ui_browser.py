"""The web UI in a real browser: Debian's Chromium, driven by Playwright, against ``loadkit ui``
and the embedded reference platform on loopback.

What an engineer watching would see: every profile explained beside the class picker, a run
LIVE then FINAL, a stop from the web UI read as "stopped early", the first run's files still
there after the second, a refused start saying why, the login, the base path. Each step is
screenshotted into the test's folder (kept, and printed, when a test fails); any JavaScript
error on the page fails the test. ``LOADKIT_UPDATE_SCREENSHOT=1`` also copies the Baseline tab's
screenshot to docs/images/web-ui.png (the README's).

Chromium comes from Debian (``scripts/test.sh`` installs it): Playwright never downloads one.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import REPO_ROOT, kit_env
from web_ui_session import UiSession, ui_session, wait_for

from loadkit import registry
from loadkit.platform.launcher import RunningPlatform

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
#: Flags that work on a machine without a display, a sandbox or a network beyond loopback.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
README_SCREENSHOT = REPO_ROOT / "docs" / "images" / "web-ui.png"
PASSWORD = "web-ui-test-password-4b1d"
STEP_TIMEOUT_MS = 30_000


@dataclass
class Browser:
    """One page in a fresh Chromium profile, its screenshots and its JavaScript errors."""

    page: Any
    shots_dir: Path
    shots: list[Path] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def visiting(self, url: str) -> Iterator[Any]:
        """Open ``url``; leave it (for a blank page) before the UI process is stopped, whose
        going away would otherwise fail the page's polling."""
        self.page.goto(url)
        try:
            yield self.page
        except BaseException:
            self.shot("at-failure")
            raise
        finally:
            self.page.goto("about:blank")

    def shot(self, name: str) -> Path:
        path = self.shots_dir / f"{len(self.shots) + 1:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        self.shots.append(path)
        return path

    def strip(self) -> str:
        return self.page.locator("#loadkit-status").inner_text()

    def wait_phase(self, where: str, phase: str) -> None:
        self.page.locator(f"{where} [data-phase={phase}]").first.wait_for(timeout=STEP_TIMEOUT_MS)

    def open_custom_parameters(self) -> None:
        fields = self.page.locator("input[name=timeScale]")
        if not fields.is_visible():
            self.page.get_by_role("button", name="Custom parameters").click()
            fields.wait_for()


@pytest.fixture
def browser(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: scripts/test.sh installs Debian's chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    failed_before = request.session.testsfailed
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_FLAGS,
            headless=True,
            viewport={"width": 1280, "height": 900},
        )
        page = context.new_page()
        page.set_default_timeout(STEP_TIMEOUT_MS)
        seen = Browser(page, shots)
        page.on("console", lambda m: m.type == "error" and seen.errors.append(m.text))
        page.on("pageerror", lambda e: seen.errors.append(f"uncaught: {e}"))
        try:
            yield seen
        finally:
            if request.session.testsfailed > failed_before:
                print("\nscreenshots kept:\n" + "\n".join(str(p) for p in seen.shots))
            context.close()
    assert seen.errors == [], f"JavaScript errors on the page: {seen.errors}"


def test_profiles_live_then_final_stop_early_two_runs_kept_and_a_refused_start(
    fresh_platform: RunningPlatform, tmp_path: Path, browser: Browser
) -> None:
    env = kit_env(fresh_platform.url)
    with ui_session("health", env, tmp_path / "results") as ui, browser.visiting(ui.url) as page:
        browser.wait_phase("#loadkit-status", "idle")
        browser.shot("form")

        # Every profile in the picker, with what it plays and how long (Time Scale applied).
        browser.open_custom_parameters()
        page.fill("input[name=timeScale]", "0.1")
        help_box = page.locator("#loadkit-form-help")
        for spec in registry.PROFILES.values():
            page.select_option("#shapeClass", spec.shape_class_name)
            text = help_box.inner_text()
            assert f"{spec.name}: {spec.purpose}" in text, text
            stages = ", ".join(f"{s.duration_s:g}s:{s.target_users}" for s in spec.stages)
            assert f"stages {stages}" in text, text
            seconds = sum(s.duration_s for s in spec.stages)
            assert f"{seconds:,.0f} s (× 0.1 time scale: {seconds * 0.1:,.0f} s)" in text, text
            browser.shot(f"profile-{spec.name}")
        page.select_option("#shapeClass", "CustomShape")
        assert "Your own stages" in help_box.inner_text()
        page.select_option("#shapeClass", "Default")
        assert "No profile" in help_box.inner_text()

        # 1. Smoke, 3 s: the strip goes LIVE, the Baseline tab follows it to FINAL.
        page.select_option("#shapeClass", "SmokeShape")
        page.get_by_role("button", name="Start").click()
        assert "FINAL" not in browser.strip()
        browser.wait_phase("#loadkit-status", "running")
        page.get_by_role("tab", name="Baseline").click()
        browser.wait_phase("#loadkit-baseline", "running")
        page.locator("#loadkit-baseline .lk-criteria tbody tr").first.wait_for()
        assert re.search(r"[\d,]+ requests, 0 failures", browser.strip()), browser.strip()
        browser.shot("smoke-live")
        browser.wait_phase("#loadkit-baseline", "final")
        baseline = page.locator("#loadkit-baseline").inner_text()
        assert "complete" in baseline and "PASSED" in baseline, baseline
        # a criterion for other profiles says why it was skipped
        assert "skipped\tapplies to average, stress, soak, not smoke" in baseline, baseline
        browser.shot("smoke-final")
        first = ui.run_verdict("1-smoke")
        assert first["state"] == "complete" and first["passed"] is True

        # 2. Spike (10 users at its peak), stopped at ~4 s from the web UI: "stopped early".
        page.get_by_role("button", name="New").click()
        page.select_option("#shapeClass", "SpikeShape")
        browser.open_custom_parameters()
        page.fill("input[name=timeScale]", "0.1")
        page.fill("input[name=userScale]", "0.1")
        page.get_by_role("button", name="Start").click()
        assert "PASSED" not in browser.strip()  # the smoke's verdict is gone at once
        browser.wait_phase("#loadkit-status", "running")
        # The smoke's file link, taken while the spike's own row of the same table changes each
        # poll (files appear, then its state): it must stay the node it is now, since one swapped
        # between mouse-down and mouse-up loses the click and the file would not open.
        page.get_by_role("tab", name="Baseline").click()
        runs = page.locator("#loadkit-baseline .lk-runs tbody tr")
        wait_for(lambda: runs.count() == 2, what="the spike listed beside the smoke")
        first_row = page.locator("#loadkit-baseline tr[data-run='1-smoke']")
        link = first_row.get_by_role("link", name="verdict.json")
        shown = link.element_handle()
        page.wait_for_timeout(4000)
        page.get_by_role("button", name="Stop").click()
        browser.wait_phase("#loadkit-status", "final")
        strip = browser.strip()
        assert "stopped early: stopped from the web UI at" in strip, strip
        assert "STOPPED EARLY" in strip, strip
        page.get_by_role("tab", name="Baseline").click()
        assert "complete" in first_row.inner_text() and "PASSED" in first_row.inner_text()
        spike_row = page.locator("#loadkit-baseline tr[data-run='2-spike']").inner_text()
        assert "stopped early" in spike_row
        page.get_by_role("button", name="New").wait_for()  # Locust's header caught up too
        shot = browser.shot("two-runs")
        if os.environ.get("LOADKIT_UPDATE_SCREENSHOT") == "1":
            README_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(shot, README_SCREENSHOT)
        assert shown.evaluate("node => node.isConnected"), "the smoke's link was rebuilt"
        # The first run's files are untouched, and its link serves them.
        with page.context.expect_page() as opened:
            link.click()
        served = opened.value
        served.wait_for_load_state()
        assert json.loads(served.locator("body").inner_text()) == first
        served.close()
        assert ui.run_verdict("1-smoke") == first

        # 3. Refused starts: the reason under the form and in the strip, no verdict left up.
        page.get_by_role("button", name="New").click()
        page.select_option("#shapeClass", "CustomShape")
        browser.open_custom_parameters()
        page.fill("input[name=stage]", "")
        page.get_by_role("button", name="Start").click()
        reason = "no profile given: name one of smoke, average, stress, spike, soak or pass --stage"
        page.get_by_text("loadkit: " + reason).first.wait_for()
        browser.wait_phase("#loadkit-status", "refused")
        strip = browser.strip()
        assert reason in strip and "STOPPED EARLY" not in strip, strip
        browser.shot("refused-custom")
        page.select_option("#shapeClass", "SmokeShape")
        page.fill("input[name=timeScale]", "abc")
        page.get_by_role("button", name="Start").click()
        reason = "argument --time-scale: invalid float value: 'abc'"
        page.get_by_text("loadkit: " + reason).first.wait_for()
        wait_for(lambda: reason in browser.strip(), what="the second reason in the strip")
        browser.shot("refused-time-scale")
        assert sorted(p.name for p in ui.session_dir().iterdir()) == ["1-smoke", "2-spike"]


def test_login_and_base_path_with_an_arrival_rate_scenario(
    fresh_platform: RunningPlatform, tmp_path: Path, browser: Browser
) -> None:
    env = kit_env(fresh_platform.url, LOADKIT_WEB_PASSWORD=PASSWORD)
    args = ["--web-base-path", "/locust"]
    with ui_session("scheduling", env, tmp_path / "results", args, ("loadkit", PASSWORD)) as ui:
        _refused_without_login(ui)
        with browser.visiting(ui.url):
            _log_in_start_and_judge_a_rate(ui, browser, fresh_platform)


def _log_in_start_and_judge_a_rate(
    ui: UiSession, browser: Browser, platform: RunningPlatform
) -> None:
    page = browser.page
    assert page.url == ui.url + "login"
    browser.shot("login")
    page.fill("input[name=username]", "loadkit")
    page.fill("input[name=password]", "not-the-password")
    page.get_by_role("button", name="Login").click()
    page.get_by_text("Wrong username or password").wait_for()
    browser.shot("login-refused")
    page.fill("input[name=username]", "loadkit")
    page.fill("input[name=password]", PASSWORD)
    page.get_by_role("button", name="Login").click()
    page.locator("#loadkit-status [data-phase=idle]").wait_for()
    assert page.url == ui.url

    # An arrival-rate scenario: the form says its load is a rate, and lets you set it.
    page.select_option("#shapeClass", "SmokeShape")
    assert "starts calls at a rate" in page.locator("#loadkit-form-help").inner_text()
    browser.open_custom_parameters()
    page.fill("input[name=timeScale]", "0.1")
    page.fill("input[name=rate]", "20")
    browser.shot("arrival-form")
    page.get_by_role("button", name="Start").click()
    browser.wait_phase("#loadkit-status", "running")
    page.get_by_role("tab", name="Baseline").click()
    browser.wait_phase("#loadkit-baseline", "final")
    baseline = page.locator("#loadkit-baseline").inner_text()
    assert "arrival rate\t20 calls/s" in baseline or "20/s" in baseline, baseline
    browser.shot("arrival-final")
    verdict = ui.run_verdict("1-smoke")
    accepted = platform.counters()["responses"].get("POST /api/calls 201", 0)
    assert verdict["totals"]["requests"] == accepted
    assert verdict["totals"]["rps"] == pytest.approx(20, rel=0.2), verdict["totals"]


def _refused_without_login(ui: UiSession) -> None:
    """Without the login, every route refuses: 401 for scripts, the login page for a browser;
    nothing of the kit's answers outside the base path."""
    assert ui.url.endswith("/locust/"), ui.url
    for path in ("loadkit/status", "loadkit/verdict", "loadkit/runs", "stats/requests"):
        refused = requests.get(ui.url + path, timeout=5)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"].startswith("Basic")
    start = requests.post(ui.url + "swarm", data={"user_count": 1}, timeout=5,
                          headers={"Origin": ui.origin})  # fmt: skip
    assert start.status_code == 401
    page = requests.get(ui.url, headers={"Accept": "text/html"}, allow_redirects=False, timeout=5)
    assert (page.status_code, page.headers["Location"]) == (302, "/locust/login")
    assert ui.get("loadkit/status").json()["phase"] == "idle"  # the refused start changed nothing
    assert requests.get(ui.origin + "/loadkit/status", auth=ui.auth, timeout=5).status_code == 404
