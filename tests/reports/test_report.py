"""report.html and the viewer's data, from a real (tiny) training run."""

from __future__ import annotations

import base64
import json
import re

import pytest

from palaestra.reports import load_run, write_report
from palaestra.reports.viewer import episode_payload
from palaestra.rollout import Trajectory, Turn


def _js_payload(path):
    text = path.read_text()
    match = re.fullmatch(r"(\w+)\((.*)\);\n", text, flags=re.DOTALL)
    assert match, text[:80]
    return match.group(1), json.loads(match.group(2))


def test_training_writes_a_self_contained_report(tiny_run):
    page = (tiny_run / "report.html").read_text()
    assert "<script" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # no network
    images = re.findall(r"src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    assert len(images) == 2  # training curves, success by env
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    for text in ("Training", "Evaluation", "VowelChat-v0", "before", "after", "format errors", "config.yaml"):
        assert text in page
    assert "viewer/index.html#source=after&amp;env=VowelChat-v0&amp;success=0" in page
    assert re.search(r"score \d+\.\d%", page)


def test_run_data_reads_metrics_and_both_evaluations(tiny_run):
    run = load_run(tiny_run)
    assert [r["step"] for r in run.metrics if "reward/mean" in r] == [1, 2, 3]
    assert [e.label for e in run.evaluations] == ["before", "after"]
    after = run.evaluations[1].envs["VowelChat-v0"]
    assert after.summary["episodes"] == 6 and len(after.trajectories()) == 6
    assert 0.0 <= run.evaluations[1].score()["score"] <= 1.0


def test_run_data_skips_a_metrics_line_cut_short(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 1, "reward/mean": 0.5}\n{"step": 2, "rew')
    with pytest.warns(UserWarning, match="line 2 is not complete JSON"):
        run = load_run(tmp_path)
    assert [r["step"] for r in run.metrics] == [1]


def test_viewer_data_has_every_episode_with_chat_and_token_view(tiny_run):
    name, index = _js_payload(tiny_run / "viewer" / "data" / "index.js")
    assert name == "palaestraIndex" and index["run"] == "tiny"
    rows = index["episodes"]
    assert len(rows) == 12 and {r["source"] for r in rows} == {"before", "after"}
    name, ep = _js_payload(tiny_run / "viewer" / "data" / "episodes" / f"{rows[-1]['id']}.js")
    assert name == "palaestraEpisode" and len(ep["turns"]) == 3
    assert [m["role"] for m in ep["messages"]][:3] == ["system", "user", "assistant"]
    for i, turn in enumerate(ep["turns"]):
        tokens = turn["tokens"]
        masks = [m for _, m, _ in tokens]
        assert set(masks) <= {0, 1} and masks[-1] == 1  # the turn ends with its sampled reply
        assert (0 in masks) == (i > 0)  # later turns start with the env's message (context tokens)
        sampled = [(text, lp) for text, m, lp in tokens if m]
        assert all(lp <= 0 for _, lp in sampled)
        assert "".join(text for text, _ in sampled).startswith(
            turn["action"]
        )  # decoded with the run's tokenizer


def test_episode_payload_keeps_screenshots_of_gui_messages():
    png = "data:image/png;base64,iVBORw0KGgo="
    traj = Trajectory(
        "palaestra/Web-Demo-v0",
        0,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Click OK"},
                    {"type": "image_url", "image_url": {"url": png}},
                ],
            },
            {"role": "assistant", "content": "click(3)"},
        ],
        turns=[Turn("click(3)", "done", 1.0, True, False, {"format_error": None, "success": True})],
        success=True,
    )
    payload = episode_payload(traj)
    assert payload["messages"][0] == {"role": "user", "text": "Click OK", "images": [png]}
    assert payload["turns"][0]["tokens"] is None  # text-only agent: no token view


def test_report_can_be_rewritten_in_place(tiny_run):
    path = write_report(tiny_run)
    assert path == tiny_run / "report.html" and not list(tiny_run.glob(".report.html.*"))


def test_episode_payload_shows_structured_tool_calls_and_which_tool_answered():
    from palaestra.tools import ToolCall

    call = ToolCall("get", {"key": "alpha"}, "srv-0").openai()
    traj = Trajectory(
        "test/Lookup-v0",
        0,
        messages=[
            {"role": "user", "content": "What is alpha + beta?"},
            {"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "srv-0", "name": "get", "content": "7"},
        ],
        turns=[Turn("<tool_call>...</tool_call>", "7", 0.0, False, False, {"format_error": None})],
    )
    texts = [m["text"] for m in episode_payload(traj)["messages"]]
    assert texts[1:] == ['get({"key": "alpha"})', "[get] 7"]
