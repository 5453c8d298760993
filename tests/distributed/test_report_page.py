"""``crystallize-dist report`` and ``Result.to_html`` in a real headless Chromium: the page
loads with no console error and no request to any other address, every chart is drawn,
the digest shown is the run's; a run still going gets a partial report; store text with
markup in it is shown as text."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser import Browser
from compare_experiment import build, failing
from report_checks import check_page
from test_cli import cli, home  # noqa: F401  (fixture)

from crystallize_dist.config import Settings
from crystallize_dist.distributed import coordinator
from crystallize_dist.distributed.local import run_local
from crystallize_dist.distributed.store import SQLiteStore
from crystallize_dist.engine.plan import RunPlan

EXPERIMENT = str(Path(__file__).resolve().parents[1] / "compare_experiment.py")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    chrome = Browser(tmp_path_factory.mktemp("chromium"))
    try:
        yield chrome
    finally:
        chrome.close()


@pytest.mark.usefixtures("home")
def test_report_of_a_local_run_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    res = cli("submit", f"{EXPERIMENT}:failing", "--local", "--no-progress", "-w", "2", code=3)
    run_id = res.stdout.splitlines()[0]
    out = tmp_path / "report.html"
    said = cli("report", run_id, "--local", "-o", str(out))
    assert said.stdout.strip() == f"wrote {out}"
    page = check_page(browser, out)
    digest = json.loads(cli("result", run_id, "--local", "--format", "json").stdout)["digest"]
    assert page.digest == digest
    # a distribution per numeric metric (loss, score), a forest plot per compared metric
    # (score; loss has three values per cell), the timeline
    assert page.charts == ["forest:score", "distribution:loss", "distribution:score", "timeline"]
    for needle in (
        f"Run {run_id}",
        "master seed",
        "Paired comparisons",
        "metric 'loss' not compared",
        "up_rep_2: PipelineExecutionError (RuntimeError)",
        "planned failure at up:2",
        "Traceback (most recent call last)",
        "Workers",
    ):
        assert needle in page.text, needle
    # two pool processes, unless one of them took every quick cell before the other started
    assert re.search(r"36 cells on [12] worker process(es)?;", page.text), page.text
    assert "Partial" not in page.text


def test_result_to_html_of_an_in_process_run(browser: Browser, tmp_path: Path) -> None:
    result = build().run()
    path = result.to_html(tmp_path / "in-process.html")
    page = check_page(browser, path)
    assert page.digest == result.digest
    assert page.charts == ["forest:score", "distribution:score", "timeline"]  # label is text
    assert "No cell failed." in page.text and "(in-process)" in page.text


@pytest.mark.usefixtures("home")
def test_a_run_still_going_gets_a_partial_report(browser: Browser, tmp_path: Path) -> None:
    settings = Settings.from_env()
    store = SQLiteStore(settings.sqlite_path)
    sub = coordinator.submit(
        f"{EXPERIMENT}:experiment", settings=settings, store=store, local=True
    )
    cells = list(RunPlan.from_dict(sub.manifest["plan"]).cells())
    run_local(sub.run_id, cells[:20], store=store, settings=settings, workers=1)
    out = tmp_path / "partial.html"
    said = cli("report", sub.run_id, "--local", "-o", str(out))
    assert "partial: run running: 20 of 36 cells have a record" in said.stdout
    page = check_page(browser, out)
    assert "Partial: run running: 20 of 36 cells have a record" in page.text


def test_markup_in_names_and_messages_is_shown_as_text(browser: Browser, tmp_path: Path) -> None:
    """A metric name, a treatment name and an error message full of HTML: the page shows
    them as text, runs no script and loads nothing."""
    evil = '<script>document.title="owned"</script><img src="http://127.0.0.1:9/x">'
    result = failing.run()
    result.metrics.treatments[evil] = result.metrics.treatments.pop("same")
    result.metrics.baseline.metrics[evil] = list(result.metrics.baseline.metrics["score"])
    first = next(iter(result.errors.values()))
    first.message = first.traceback_str = evil  # type: ignore[attr-defined]
    result.provenance["value_layout"][evil] = result.provenance["value_layout"].pop("same")
    layout = result.provenance["value_layout"]
    layout["baseline"] = [[a, b, {**c, evil: 1}] for a, b, c in layout["baseline"]]
    page = check_page(browser, result.to_html(tmp_path / "evil.html"))
    assert page.scripts == 0
    assert browser.evaluate("document.title").startswith("crystallize-dist report")
    assert page.text.count(evil) >= 3


@pytest.mark.usefixtures("home")
def test_without_the_report_extra_it_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    res = cli("submit", f"{EXPERIMENT}:experiment", "--local", "--no-progress", "-w", "1")
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    out = cli("report", res.stdout.splitlines()[0], "--local", code=1)
    assert out.stderr == (
        "error: the report's charts need matplotlib: pip install 'crystallize-dist[report]'\n"
    )
    assert not Path("report.html").exists()
