"""Matplotlib figures for reports, returned as `data:image/png;base64,...` URIs (no files, no network).

Figures are built with `matplotlib.figure.Figure` directly (no pyplot), so the process's backend and
pyplot state are left alone and nothing needs closing.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
from matplotlib.figure import Figure

__all__ = ["TRAINING_PANELS", "eval_bars", "figure_uri", "training_curves"]

TRAINING_PANELS: list[tuple[str, list[str]]] = [
    ("reward", ["reward/mean"]),
    ("success", ["rollout/success"]),
    ("KL to reference", ["loss/kl", "loss/approx_kl"]),
    ("entropy", ["loss/entropy"]),
    ("response length (tokens)", ["rollout/response_length"]),
    ("throughput (tokens / s)", ["throughput/rollout_tokens_per_s", "throughput/train_tokens_per_s"]),
]
"""Panels of the training-curve figure: a title and the metric keys drawn in it (missing keys skipped)."""

_COLORS = matplotlib.color_sequences["tab10"]


def figure_uri(fig: Figure) -> str:
    """Render a figure to a PNG data URI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _series(records: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(float(r["step"]))
            ys.append(float(v))
    return xs, ys


def _eval_success(records: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[float], list[float]]]:
    """Held-out success per env: `eval/<env>/success` (before, periodic) and `final/eval/<env>/success`."""
    keys = sorted({k.removeprefix("final/") for r in records for k in r if k.endswith("/success")})
    out = []
    for key in (k for k in keys if k.startswith("eval/")):
        points = sorted(zip(*_series(records, key), strict=True)) + sorted(
            zip(*_series(records, "final/" + key), strict=True)
        )
        if points:
            out.append((key, [x for x, _ in points], [y for _, y in points]))
    return out


def training_curves(records: Sequence[Mapping[str, Any]]) -> str | None:
    """Training curves from metrics.jsonl records (one panel per `TRAINING_PANELS` entry with data).

    The reward panel shades mean ± std; held-out evaluations (`eval/<env>/success`) are drawn as
    markers in the success panel. Returns None when no panel has data.
    """
    panels = []
    for title, keys in TRAINING_PANELS:
        lines = [(k, *_series(records, k)) for k in keys]
        lines = [line for line in lines if line[1]]
        if title == "success":
            lines += _eval_success(records)
        if lines:
            panels.append((title, lines))
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig = Figure(figsize=(4.2 * cols, 2.9 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax, (title, lines) in zip(axes.flat, panels, strict=False):
        for i, (key, xs, ys) in enumerate(lines):
            is_eval = key.startswith("eval/")
            ax.plot(xs, ys, "o--" if is_eval else "-", color=_COLORS[i % 10], label=key, lw=1.6, ms=4)
            if key == "reward/mean":
                sx, sd = _series(records, "reward/std")
                if sx == xs:
                    ax.fill_between(
                        xs,
                        [y - s for y, s in zip(ys, sd, strict=True)],
                        [y + s for y, s in zip(ys, sd, strict=True)],
                        color=_COLORS[i % 10],
                        alpha=0.15,
                        lw=0,
                    )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend(fontsize=6.5, loc="best")
    fig.tight_layout()
    return figure_uri(fig)


def eval_bars(
    envs: Sequence[str],
    series: Mapping[str, Mapping[str, tuple[float, float, float]]],
    *,
    title: str = "success rate (95% CI)",
) -> str:
    """Grouped bar chart: one group per env, one bar per series (e.g. agent or before/after).

    Args:
        envs: the env keys, in order.
        series: label -> env -> (value, ci_low, ci_high); envs missing from a series are left empty.
        title: the chart title.
    """
    n = max(1, len(series))
    width = 0.8 / n
    fig = Figure(figsize=(max(5.0, 0.9 * len(envs) * max(1, n / 2) + 2), 3.4))
    ax = fig.subplots()
    for i, (label, values) in enumerate(series.items()):
        xs, ys, err_lo, err_hi = [], [], [], []
        for j, env in enumerate(envs):
            if env in values:
                v, lo, hi = values[env]
                xs.append(j + (i - (n - 1) / 2) * width)
                ys.append(v)
                err_lo.append(max(0.0, v - lo))
                err_hi.append(max(0.0, hi - v))
        ax.bar(xs, ys, width, yerr=[err_lo, err_hi], capsize=3, label=label, color=_COLORS[i % 10])
    ax.set_xticks(range(len(envs)))
    ax.set_xticklabels(
        envs, rotation=30 if len(envs) > 3 else 0, ha="right" if len(envs) > 3 else "center", fontsize=8
    )
    ax.set_ylim(0, 1.05)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    return figure_uri(fig)
