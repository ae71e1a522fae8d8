"""The report and the trajectory viewer in headless Chromium (Playwright), on a real quickstart run.

Writes screenshots for humans to look at: runs/screenshots/report.png, viewer.png, viewer-gui.png.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
from pathlib import Path

import pytest

from palaestra.reports import build_viewer, serve
from palaestra.rollout import Trajectory, Turn

pytestmark = pytest.mark.slow

SCREENSHOTS = Path(__file__).resolve().parents[2] / "runs" / "screenshots"


@pytest.fixture(scope="module")
def browser(quickstart_run, tiny_run):
    """Headless Chromium (the web envs' launch settings). Depends on the runs so that they are made
    first: Playwright's sync API holds an event loop on this thread, where training cannot asyncio.run."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install -e '.[dev]')")
    from palaestra.envs.web.browser import launch_kwargs

    kwargs = launch_kwargs()
    if "executable_path" not in kwargs:
        pytest.skip("needs Debian's chromium (make sysdeps installs it)")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(**kwargs)
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


def test_viewer_shows_gui_screenshots_from_disk(browser, tiny_run, tmp_path):
    """A GUI episode (image content parts) renders its screenshot; the viewer works over file:// too."""
    page = browser.new_page(viewport={"width": 900, "height": 500})
    page.set_content("<body style='background:#dbeafe'><h1>Login</h1><button>Sign in</button></body>")
    shot = "data:image/png;base64," + base64.b64encode(page.screenshot()).decode()
    gui = Trajectory(
        "palaestra/Web-Login-v0",
        7,
        agent="scripted:expert",
        messages=[
            {"role": "system", "content": "Act on the page."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Sign in."},
                    {"type": "image_url", "image_url": {"url": shot}},
                ],
            },
            {"role": "assistant", "content": "click(12, 40)"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Done."},
                    {"type": "image_url", "image_url": {"url": shot}},
                ],
            },
        ],
        turns=[Turn("click(12, 40)", "Done.", 1.0, True, False, {"success": True, "format_error": None})],
        success=True,
    )
    run = shutil.copytree(tiny_run, tmp_path / "tiny")
    index_html = build_viewer(run, extra=[("gui", "Web-Login-v0", [gui])])
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(index_html.as_uri() + "#env=Web-Login-v0")
    assert len(_rows(page)) == 1
    page.click("[data-testid=episode-row]")
    page.wait_for_selector("[data-testid=screenshot]")
    widths = page.eval_on_selector_all("[data-testid=screenshot]", "imgs => imgs.map(i => i.naturalWidth)")
    assert widths == [900, 900]
    assert re.search(r"reward 1", page.text_content("[data-testid=turn]"))
    page.screenshot(path=SCREENSHOTS / "viewer-gui.png", full_page=True)
    page.close()
