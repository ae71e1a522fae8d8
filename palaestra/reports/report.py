"""`report.html`: one self-contained page per run (inline CSS, plots as embedded PNGs, no network).

Sections: training curves (from metrics.jsonl), evaluation tables and a success chart per evaluation
(training stages before/after, or the agents of a suite), a per-env breakdown across evaluations, and
the resolved config. Links lead into the trajectory viewer built beside it (`viewer/index.html`).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import yaml

from palaestra.io import atomic_write_text
from palaestra.reports.plots import eval_bars, training_curves
from palaestra.reports.run_data import Evaluation, RunData, load_run
from palaestra.reports.viewer import build_viewer

__all__ = ["render_report", "write_report"]

_CSS = """
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f9fafb}
header{padding:1rem 2rem;background:#111827;color:#f9fafb}header h1{margin:0;font-size:1.3rem}
header p{margin:.2rem 0 0;color:#9ca3af;font-size:12px}header a{color:#93c5fd}
main{padding:1rem 2rem;max-width:1200px}section{margin-bottom:2rem}
h2{font-size:1.1rem;border-bottom:1px solid #e5e7eb;padding-bottom:.2rem}h3{font-size:1rem;margin:1.2rem 0 .4rem}
table{border-collapse:collapse;background:#fff;border:1px solid #e5e7eb;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid #e5e7eb;text-align:right;white-space:nowrap}
th{background:#f3f4f6;font-size:12px}td:first-child,th:first-child{text-align:left}
img{max-width:100%;background:#fff;border:1px solid #e5e7eb}.muted{color:#6b7280;font-size:12px}
.score{font-size:1.05rem;font-weight:600}pre{background:#fff;border:1px solid #e5e7eb;padding:.6rem;overflow:auto;font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{background:#fff;border:1px solid #e5e7eb;padding:.5rem .9rem;border-radius:6px}
.card b{display:block;font-size:1.2rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(x: float) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _viewer_link(text: str, **params: str) -> str:
    return f'<a href="viewer/index.html#{_e(urlencode(params))}">{_e(text)}</a>'


def _ci(summary: dict[str, Any]) -> tuple[float, float]:
    lo, hi = summary.get("success_bootstrap_ci95") or summary["success_ci95"]
    return float(lo), float(hi)


_COLUMNS = (
    "env",
    "episodes",
    "success",
    "95% CI",
    "mean reward",
    "turns",
    "tokens / ep.",
    "format errors",
    "failed",
    "wall time",
    "",
)


def _eval_table(ev: Evaluation) -> str:
    rows = []
    for key, env in ev.envs.items():
        s = env.summary
        lo, hi = _ci(s)
        cells = [
            _e(key),
            str(s["episodes"]),
            _pct(s["success_rate"]),
            f"[{_pct(lo)}, {_pct(hi)}]",
            f"{s['reward_mean']:.3f}",
            f"{s['turns_mean']:.2f}",
            f"{s['generated_tokens_mean']:.1f}",
            _pct(s["format_error_rate"]),
            _pct(s["error_rate"]),
            f"{s['wall_time_s']:.1f} s",
            _viewer_link("episodes", source=ev.label, env=key)
            + " · "
            + _viewer_link("failures", source=ev.label, env=key, success="0"),
        ]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{_e(c)}</th>" for c in _COLUMNS)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _evaluations_section(run: RunData) -> str:
    if not run.evaluations:
        return ""
    parts = ["<section id='evaluation'><h2>Evaluation</h2>"]
    parts.append(
        "<p class='muted'>Score = mean over envs of the success rate (each env weighs the same); "
        "intervals are percentile bootstrap 95% intervals over episodes (stratified by env).</p>"
    )
    envs: list[str] = []
    for ev in run.evaluations:
        envs += [k for k in ev.envs if k not in envs]
    series = {}
    for ev in run.evaluations:
        agg = ev.score()
        lo, hi = agg["ci95"]
        parts.append(
            f"<h3>{_e(ev.label)}</h3><p class='score'>score {_pct(agg['score'])} "
            f"<span class='muted'>[{_pct(lo)}, {_pct(hi)}] over {len(ev.envs)} env(s)</span></p>"
        )
        parts.append(_eval_table(ev))
        series[ev.label] = {k: (e.summary["success_rate"], *_ci(e.summary)) for k, e in ev.envs.items()}
    parts.append(f"<h3>Success by env</h3><img alt='success by env' src='{eval_bars(envs, series)}'>")
    parts.append(_per_env_section(run, envs))
    parts.append("</section>")
    return "".join(parts)


def _per_env_section(run: RunData, envs: list[str]) -> str:
    if len(run.evaluations) < 2:
        return ""
    parts = ["<h3>Per env</h3>"]
    for key in envs:
        rows = []
        for ev in run.evaluations:
            if key not in ev.envs:
                continue
            s = ev.envs[key].summary
            lo, hi = _ci(s)
            rows.append(
                f"<tr><td>{_e(ev.label)}</td><td>{_pct(s['success_rate'])}</td><td>[{_pct(lo)}, {_pct(hi)}]</td>"
                f"<td>{s['reward_mean']:.3f}</td><td>{s['turns_mean']:.2f}</td>"
                f"<td>{_pct(s['format_error_rate'])}</td>"
                f"<td>{_viewer_link('browse', source=ev.label, env=key)}</td></tr>"
            )
        parts.append(
            f"<h4>{_e(key)}</h4><table><thead><tr><th>evaluation</th><th>success</th><th>95% CI</th>"
            f"<th>mean reward</th><th>turns</th><th>format errors</th><th></th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
    return "".join(parts)


def _training_section(run: RunData) -> str:
    steps = [r for r in run.metrics if "reward/mean" in r]
    if not steps:
        return ""
    last = steps[-1]
    cards = [
        ("steps", str(last["step"])),
        ("final reward", f"{last['reward/mean']:.3f}"),
        ("final success", _pct(last.get("rollout/success", float("nan")))),
        ("mean step time", f"{sum(r.get('time/step_s', 0) for r in steps) / len(steps):.1f} s"),
    ]
    card_html = "".join(
        f"<div class='card'><span class='muted'>{_e(k)}</span><b>{_e(v)}</b></div>" for k, v in cards
    )
    image = training_curves(run.metrics)
    img = f"<img alt='training curves' src='{image}'>" if image else ""
    return (
        f"<section id='training'><h2>Training</h2><div class='cards'>{card_html}</div><p></p>{img}</section>"
    )


def render_report(run: RunData) -> str:
    """The report page of a loaded run, as HTML text."""
    from palaestra import __version__

    now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    config = ""
    if run.config:
        dumped = yaml.safe_dump(run.config, sort_keys=False)
        config = f"<section id='config'><h2>Config</h2><details><summary>config.yaml</summary><pre>{_e(dumped)}</pre></details></section>"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>palaestra report: {_e(run.name)}</title><style>{_CSS}</style></head><body>"
        f"<header><h1>palaestra report: {_e(run.name)}</h1>"
        f"<p>{_e(run.root.resolve())} · written {_e(now)} · palaestra {_e(__version__)} · "
        f"<a href='viewer/index.html'>trajectory viewer</a></p></header><main>"
        f"{_training_section(run)}{_evaluations_section(run)}{config}</main></body></html>\n"
    )


def write_report(run_dir: str | os.PathLike[str]) -> Path:
    """Write RUN/report.html and the trajectory viewer it links to; returns the report's path.

    Raises:
        FileNotFoundError: the run folder does not exist.
        ValueError: it holds neither training metrics nor evaluation results.
    """
    run = load_run(run_dir)
    build_viewer(run)
    path = Path(run_dir) / "report.html"
    atomic_write_text(path, render_report(run))
    return path
