"""The service's page in headless Chromium, used as a person would: pick, type, click, read.

Chromium is driven with Playwright's Python client against the system browser
(`/usr/bin/chromium`, or $LLM2LOSS_CHROMIUM): `chromium.launch(executable_path=...)`, no browser
download. Without Chromium or Playwright these tests skip, except under CI=true, where they fail
(a green CI must have opened the page).

What is checked: the audit list, an estimate typed and shown with the numbers the API gives, a
comparison's sentence, discovery tables, an error shown in words, a phrase full of HTML shown as
text (no element made, no script run), and the ?audit= link preselecting an audit.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from serve_helpers import MODEL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]

CHROMIUM = os.environ.get("LLM2LOSS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 120_000  # the first question opens the audit on a shared 2-core machine
READY = "#audit-status[data-ready]"  # waits are selectors: the page's CSP forbids eval'd JS


def _need(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: the browser tests must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless system Chromium through Playwright, closed at the end of the module."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed: pip install playwright (it drives the system Chromium)")
    if not os.path.exists(CHROMIUM):
        _need(f"no Chromium at {CHROMIUM}: install it (apt-get install chromium) or set LLM2LOSS_CHROMIUM")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu"])
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, service) -> Iterator[Any]:
    """A fresh page on the service with v1 picked and opened; console errors collected."""
    yield from _page(browser, service)


@pytest.fixture
def page_without_csp(browser, service) -> Iterator[Any]:
    """The same, with the page's Content-Security-Policy ignored: only its own escaping protects it."""
    yield from _page(browser, service, bypass_csp=True)


def _page(browser, service, **options: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, **options)
    tab = context.new_page()
    tab.console_errors = []
    tab.on("console", lambda msg: tab.console_errors.append(msg.text) if msg.type == "error" else None)
    tab.on("pageerror", lambda exc: tab.console_errors.append(str(exc)))
    tab.goto(service.url + f"/?audit={MODEL}@v1")
    tab.wait_for_selector(READY, timeout=WAIT_MS)
    try:
        yield tab
    finally:
        context.close()


def api(service, path: str, body: Any) -> Any:
    return httpx.post(service.url + path, json=body, timeout=300).json()


def test_pick_an_audit_type_a_phrase_and_see_its_estimate(page, service):
    options = page.eval_on_selector_all("#audit option", "els => els.map(e => e.value)")
    assert options == [f"{MODEL}@v1", f"{MODEL}@v2"]
    assert "ready" in page.text_content("#audit-status")
    page.fill("#phrases", "an email written in HTML")
    page.click("#estimate-button")
    page.wait_for_selector("#estimate-result table tbody tr", timeout=WAIT_MS)
    cells = page.eval_on_selector_all("#estimate-result tbody tr:first-child td", "els => els.map(e => e.textContent)")
    headers = page.eval_on_selector_all("#estimate-result th", "els => els.map(e => e.textContent)")
    assert cells[0] == "an email written in HTML"
    expected = api(service, f"/api/audits/{MODEL}/v1/estimate", {"phrases": ["an email written in HTML"]})[0]
    shown = dict(zip(headers, cells))
    assert shown["Rank score (mean ± std)"] == f"{expected['loss_mean']:.3f} ± {expected['loss_std']:.3f}"
    assert shown["Familiarity"] == f"{expected['familiarity_mean']:.2f}"
    if "percentile" in expected:  # the trust columns, when the audit query gives them
        assert shown["Percentile (held-out, by loss)"].startswith(f"{expected['percentile']:.0f}")
    assert page.is_hidden("#error") and page.console_errors == []


def test_several_phrases_one_per_line(page):
    page.fill("#phrases", "a receipt\n\n  a newsletter  \n")
    page.click("#estimate-button")
    page.wait_for_selector("#estimate-result tbody tr:nth-child(2)", timeout=WAIT_MS)
    first_cells = page.eval_on_selector_all("#estimate-result tbody tr td:first-child", "els => els.map(e => e.textContent)")
    assert first_cells == ["a receipt", "a newsletter"]


def test_compare_two_phrases_and_read_the_sentence(page, service):
    a, b = "an email written in HTML", "a plain-text email"
    page.fill("#phrase-a", a)
    page.fill("#phrase-b", b)
    page.click("#compare-button")
    page.wait_for_selector("#compare-result .sentence", timeout=WAIT_MS)
    expected = api(service, f"/api/audits/{MODEL}/v1/compare", {"a": a, "b": b})
    assert page.text_content("#compare-result .sentence") == expected["sentence"]
    assert f"{expected['p_a_worse']:.2f}" in page.text_content("#compare-result table")
    if expected.get("verdict"):
        assert page.text_content("#compare-result .verdict") == expected["verdict"]


def test_discover_shows_both_tables(page):
    page.select_option("#vocabulary", "email_topics")
    page.fill("#top-k", "4")
    page.click("#discover-button")
    page.wait_for_selector("#discover-result table", timeout=WAIT_MS)
    assert "Vocabulary: email_topics" in page.text_content("#discover-result")
    assert page.locator("#discover-result table").first.locator("tbody tr").count() == 4


def test_an_empty_phrase_shows_the_error_in_words(page):
    page.fill("#phrases", "   ")
    page.click("#estimate-button")
    page.wait_for_selector("#error:not([hidden])", timeout=WAIT_MS)
    assert "a phrase is empty" in page.text_content("#error")
    page.fill("#phrase-a", "x" * 5)
    page.fill("#phrase-b", "")
    page.click("#compare-button")
    page.wait_for_selector("#error:has-text('a phrase is empty')", timeout=WAIT_MS)


def test_html_in_a_phrase_is_shown_as_text_never_run(page_without_csp):
    page = page_without_csp
    hostile = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>'
    page.fill("#phrases", hostile)
    page.click("#estimate-button")
    page.wait_for_selector("#estimate-result tbody tr", timeout=WAIT_MS)
    assert page.text_content("#estimate-result tbody td") == hostile
    assert page.locator("#estimate-result img, #estimate-result script, #estimate-result b").count() == 0
    page.fill("#phrase-a", hostile)
    page.fill("#phrase-b", "a plain-text email")
    page.click("#compare-button")
    page.wait_for_selector("#compare-result .sentence", timeout=WAIT_MS)
    assert hostile in page.text_content("#compare-result .sentence")
    assert page.locator("#compare-result img, #compare-result script, #compare-result b").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_the_audit_link_preselects_it_and_the_picker_updates_it(browser, service):
    context = browser.new_context()
    tab = context.new_page()
    try:
        tab.goto(service.url + f"/?audit={MODEL}@v2")
        tab.wait_for_selector(READY, timeout=WAIT_MS)
        assert tab.input_value("#audit") == f"{MODEL}@v2"
        tab.select_option("#audit", f"{MODEL}@v1")
        tab.wait_for_selector(f'#audit-status[data-ready="{MODEL}@v1"]', timeout=WAIT_MS)
        assert tab.url.endswith(f"audit={MODEL}%40v1")
    finally:
        context.close()


def test_the_page_fits_an_800px_window(browser, service):
    context = browser.new_context(viewport={"width": 800, "height": 900})
    tab = context.new_page()
    try:
        tab.goto(service.url + f"/?audit={MODEL}@v1")
        tab.wait_for_selector(READY, timeout=WAIT_MS)
        tab.fill("#phrases", "an email written in HTML")
        tab.click("#estimate-button")
        tab.wait_for_selector("#estimate-result tbody tr", timeout=WAIT_MS)
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= 800, width  # wide tables scroll inside their box, not the page
    finally:
        context.close()
