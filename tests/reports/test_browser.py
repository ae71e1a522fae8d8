"""The report and the trajectory viewer in headless Chromium (Playwright), on a real quickstart run.

Writes screenshots for humans to look at: runs/screenshots/report.png, viewer.png, viewer-gui.png.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from palaestra.reports import serve

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[2] / "runs" / "screenshots"


@pytest.fixture(scope="module")
def launch():
    """Playwright's `chromium.launch` kwargs of the web envs (Debian's chromium, offline flags)."""
    pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[dev]')")
    from palaestra.envs.web.browser import launch_kwargs

    kwargs = launch_kwargs()
    if "executable_path" not in kwargs:
        pytest.skip("needs Debian's chromium (make sysdeps installs it)")
    return kwargs


@pytest.fixture(scope="module")
def gui_run(tmp_path_factory, launch):
    """The expert's episodes of the GUI-mode login task (screenshots as image parts), with their report."""
    from palaestra.agents.spec import make_policy
    from palaestra.evaluation import evaluate, write_results
    from palaestra.reports import write_report

    run = tmp_path_factory.mktemp("gui")
    result = evaluate(make_policy("scripted:oracle"), "palaestra/Web-Login-v0-gui", episodes=2)
    write_results(result, run / "Web-Login-v0-gui")
    write_report(run)
    return run


@pytest.fixture(scope="module")
def browser(launch, quickstart_run, gui_run):
    """Headless Chromium. Depends on the runs so that they are made first: Playwright's sync API holds
    an event loop on this thread, where training and evaluation cannot asyncio.run."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(**launch)
        yield chromium
        chromium.close()


def _rows(page) -> list[list[str]]:
    return page.eval_on_selector_all(
        "[data-testid=episode-row]", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )


def _index(run: Path) -> list[dict]:
    text = (run / "viewer" / "data" / "index.js").read_text()
    return json.loads(text[text.index("(") + 1 : text.rindex(")")])["episodes"]


def test_report_shows_its_plots_and_links_into_the_viewer(browser, quickstart_run):
    quickstart_run = quickstart_run[0]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    with serve(quickstart_run, port=0) as url:
        page.goto(url + "report.html")
        assert page.title() == "palaestra report: quickstart"
        widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 2 and min(widths) > 300  # both PNGs decoded
        assert page.locator("h3", has_text="after").count() == 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=SCREENSHOTS / "report.png", full_page=True)
        page.locator("a", has_text="failures").last.click()  # after, Math-ArithRetry-v0, failures only
        page.wait_for_selector("[data-testid=count]:not(:empty)")
        assert page.input_value("[data-testid=filter-success]") == "0"
        assert page.input_value("[data-testid=filter-env]") == "Math-ArithRetry-v0"
        rows = _rows(page)
        expected = [
            e for e in _index(quickstart_run) if e["source"] == "after" and e["env"] == "Math-ArithRetry-v0"
        ]
        assert len(rows) == sum(not e["success"] for e in expected)
        assert all(r[4] == "failure" for r in rows)
    page.close()


def test_viewer_filters_episodes_and_opens_one_as_a_chat(browser, quickstart_run):
    quickstart_run = quickstart_run[0]
    index = _index(quickstart_run)
    assert len(index) == 14  # (4 + 3) episodes, before and after training
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    with serve(quickstart_run, port=0) as url:
        page.goto(url + "viewer/index.html")
        assert page.text_content("[data-testid=count]").startswith("14 of 14 episodes")
        page.select_option("[data-testid=filter-env]", "Math-ArithRetry-v0")
        assert {r[2] for r in _rows(page)} == {"Math-ArithRetry-v0"} and len(_rows(page)) == 6
        page.select_option("[data-testid=filter-source]", "after")
        assert len(_rows(page)) == 3 and "source=after" in page.url
        page.select_option("[data-testid=filter-source]", "")
        page.select_option("[data-testid=filter-env]", "")
        page.fill("[data-testid=filter-reward-min]", "0.5")
        assert len(_rows(page)) == sum(e["reward"] >= 0.5 for e in index)
        page.fill("[data-testid=filter-reward-min]", "")
        page.select_option("[data-testid=filter-success]", "0")
        assert len(_rows(page)) == sum(not e["success"] for e in index)
        page.select_option("[data-testid=filter-success]", "")

        # the multi-turn episode with the most turns: its chat, turn records and token view
        longest = max((e for e in index if e["env"] == "Math-ArithRetry-v0"), key=lambda e: e["turns"])
        page.click(f"[data-testid=episode-row][data-id='{longest['id']}']")
        page.wait_for_selector("[data-testid=turn]")
        assert page.text_content("[data-testid=episode-title]").startswith(
            f"#{longest['id']} · Math-ArithRetry-v0"
        )
        assert page.locator("[data-testid=turn]").count() == longest["turns"]
        assert page.locator("[data-testid=msg-assistant]").count() == longest["turns"]
        assert page.locator("[data-testid=turn-reward]").first.text_content().startswith("reward ")
        page.locator("[data-testid=show-tokens]").last.click()
        tokens = page.locator("[data-testid=tokens] .tok")
        titles = tokens.evaluate_all("spans => spans.map(s => s.title)")
        assert any(t.startswith("trained (loss mask 1) · logprob -") for t in titles)
        assert any(t == "context (loss mask 0)" for t in titles)  # the env's retry message before the reply
        page.screenshot(path=SCREENSHOTS / "viewer.png", full_page=True)

        page.goto(url + f"viewer/index.html#episode={longest['id']}&success=0")  # deep link
        page.reload()
        page.wait_for_selector("[data-testid=turn]")
        assert page.text_content("[data-testid=episode-title]").startswith(f"#{longest['id']} ")
    page.close()


def test_viewer_shows_the_screenshots_of_a_gui_run_from_disk(browser, gui_run):
    """A real GUI-mode web evaluation: its screenshots show in the chat; the viewer works over file:// too."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto((gui_run / "viewer" / "index.html").as_uri())
    assert len(_rows(page)) == 2 and {r[4] for r in _rows(page)} == {"success"}
    page.click("[data-testid=episode-row][data-id='0']")
    page.wait_for_selector("[data-testid=screenshot]")
    shots = page.locator("[data-testid=screenshot]")
    turns = page.locator("[data-testid=turn]").count()
    assert turns >= 1 and shots.count() == turns  # the page before each action
    widths = shots.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
    assert min(widths) > 100
    page.screenshot(path=SCREENSHOTS / "viewer-gui.png", full_page=True)
    page.close()
