"""The trajectory viewer: a static page under RUN/viewer/ that browses every episode of a run.

`build_viewer(run)` copies the page (`static/`) and writes the episodes as JavaScript data files
(`viewer/data/index.js`, one `viewer/data/episodes/<id>.js` per episode), loaded with `<script>` tags,
so the page works both from `palaestra view RUN` (http on 127.0.0.1) and opened from disk (file://).
When the run's tokenizer can be found (`RUN/final/`, or the config's model name), each turn's tokens
are decoded for the token view (loss mask and logprobs); otherwise the view shows token ids.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from palaestra.agents.base import message_images, message_text
from palaestra.io import atomic_write_text
from palaestra.reports.run_data import RunData, load_run
from palaestra.rollout.trajectory import Trajectory

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["STATIC_FILES", "build_viewer", "episode_payload", "run_tokenizer", "serve"]

logger = logging.getLogger(__name__)

STATIC_FILES = ("index.html", "viewer.js", "viewer.css")


def run_tokenizer(run: RunData) -> PreTrainedTokenizerBase | None:
    """The run's tokenizer: `RUN/final/` (a trained model), else the config's `model.name`; None if neither."""
    final = run.root / "final"
    try:
        if (final / "tokenizer_config.json").exists():
            from transformers import AutoTokenizer

            return AutoTokenizer.from_pretrained(final)
        name = ((run.config or {}).get("model") or {}).get("name")
        if name:
            from palaestra.agents.models import load_tokenizer

            return load_tokenizer(name)
    except (OSError, ValueError) as exc:  # a tokenizer that cannot load only costs the decoded token view
        logger.warning("no tokenizer for the token view of %s: %s", run.root, exc)
    return None


def _turn_tokens(
    traj: Trajectory, index: int, tokenizer: PreTrainedTokenizerBase | None
) -> list[list[Any]] | None:
    """[text, loss_mask, logprob] per token of turn `index`: the env/template tokens since the previous
    reply (mask 0), then the sampled reply (mask 1). None for text-only trajectories."""
    start, end = traj.turns[index].token_span
    if end <= start or not traj.token_ids:
        return None
    if index > 0:
        start = traj.turns[index - 1].token_span[1]
    ids = traj.token_ids[start:end]
    texts = tokenizer.batch_decode([[i] for i in ids]) if tokenizer is not None else [f"[{i}]" for i in ids]
    return [
        [text, int(traj.loss_mask[start + k]), round(float(traj.logprobs[start + k]), 4)]
        for k, text in enumerate(texts)
    ]


def _message_text(message: dict[str, Any]) -> str:
    """A message's text, with the tool calls a server returned structured and the tool a result is from."""
    text = message_text(message)
    calls = [c["function"] for c in message.get("tool_calls") or []]
    if calls:
        text = "\n".join([text, *(f"{c['name']}({c['arguments']})" for c in calls)]).strip()
    if message.get("role") == "tool" and message.get("name"):
        text = f"[{message['name']}] {text}"
    return text


def episode_payload(traj: Trajectory, tokenizer: PreTrainedTokenizerBase | None = None) -> dict[str, Any]:
    """What the viewer shows of one episode: the chat (text + images) and each turn's record and tokens."""
    return {
        "messages": [
            {"role": m["role"], "text": _message_text(m), "images": message_images(m)} for m in traj.messages
        ],
        "turns": [
            {
                "action": t.action,
                "observation": t.observation,
                "reward": t.reward,
                "terminated": t.terminated,
                "truncated": t.truncated,
                "finish_reason": t.finish_reason,
                "format_error": t.format_error,
                "info": t.info,
                "tokens": _turn_tokens(traj, i, tokenizer),
            }
            for i, t in enumerate(traj.turns)
        ],
        "error": traj.error,
        "env_kwargs": traj.env_kwargs,
        "prompt_length": traj.prompt_length,
    }


def _index_row(eid: int, source: str, env: str, traj: Trajectory) -> dict[str, Any]:
    return {
        "id": eid,
        "source": source,
        "env": env,
        "env_id": traj.env_id,
        "seed": traj.seed,
        "sample": traj.sample_index,
        "agent": traj.agent,
        "success": bool(traj.success),
        "reward": round(traj.reward, 6),
        "turns": traj.num_turns,
        "tokens": traj.num_generated_tokens,
        "format_errors": traj.num_format_errors,
        "error": traj.error,
    }


def _js(var: str, value: Any) -> str:
    return f"{var}({json.dumps(value, ensure_ascii=False, default=str)});\n"


def build_viewer(
    run_dir: str | os.PathLike[str] | RunData,
    *,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> Path:
    """Write RUN/viewer/ (page + data of every evaluation episode); returns the path of its index.html.

    Args:
        run_dir: the run folder, or its already loaded `RunData`.
        tokenizer: decodes token ids for the token view (default: `run_tokenizer(run)`).
    """
    run = run_dir if isinstance(run_dir, RunData) else load_run(run_dir)
    tokenizer = tokenizer if tokenizer is not None else run_tokenizer(run)
    out = run.root / "viewer"
    data = out / "data"
    shutil.rmtree(data, ignore_errors=True)
    static = resources.files("palaestra.reports") / "static"
    for name in STATIC_FILES:
        atomic_write_text(out / name, (static / name).read_text(encoding="utf-8"))
    groups = [(ev.label, key, env.trajectories()) for ev in run.evaluations for key, env in ev.envs.items()]
    index: list[dict[str, Any]] = []
    for source, env, trajectories in groups:
        for traj in trajectories:
            eid = len(index)
            row = _index_row(eid, source, env, traj)
            index.append(row)
            payload = {**row, **episode_payload(traj, tokenizer)}
            atomic_write_text(data / "episodes" / f"{eid}.js", _js("palaestraEpisode", payload))
    meta = {"run": run.name, "episodes": index}
    atomic_write_text(data / "index.js", _js("palaestraIndex", meta))
    return out / "index.html"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("viewer http: " + format, *args)


@contextlib.contextmanager
def serve(run_dir: str | os.PathLike[str], *, port: int = 8765) -> Iterator[str]:
    """Serve RUN over http on 127.0.0.1 in a background thread; yields the base URL (`http://127.0.0.1:P/`)."""
    handler = functools.partial(_QuietHandler, directory=str(Path(run_dir)))
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=server.serve_forever, name="palaestra-viewer", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
