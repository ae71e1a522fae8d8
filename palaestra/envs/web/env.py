"""`WebEnv`: a bundled web task in a real Chromium, in text mode or GUI mode.

Each episode gets a fresh isolated browser context in the process's shared Chromium
(`palaestra.envs.web.browser`). The page is built from bundled files only (the task's data, the
runtime and the task script are inlined into one document, and every network request is aborted), so
tasks are hermetic and the same seed gives the same page.

Modes (see `palaestra.envs.web.actions` for the action formats):
    text: the observation is the task plus a compact accessibility tree of the page (Playwright's
        `aria_snapshot(mode="ai")`), each element with a stable id `[N]`; actions name those ids.
    gui: the observation is a dict {"text": task and step header, "screenshot": (H, W, 3) uint8}; actions
        are pixel coordinates and keys.

Rewards: "dense" pays the increase of the task's progress signal each step (0..1, 1 exactly when the task
is solved, so an episode's return is at most 1); "sparse" pays 1 when the task is solved. Unreadable
replies are format errors (reward 0, the page unchanged); a readable action that fails on the page (an
id that is not on the page, typing into a button) is reported in the observation as `action_error`.
`info["expert_action"]` is a correct next action from the task's scripted expert, in this mode's format;
`info["progress"]` is the progress signal.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import re
from html import escape
from importlib import resources
from typing import Any, Literal

import numpy as np
from gymnasium import spaces

from palaestra.envs.core import StepOutcome, TextEnv, TextSpace
from palaestra.envs.web.actions import (
    GUI_FORMAT,
    TEXT_FORMAT,
    ActionParseError,
    Mode,
    WebAction,
    format_action,
    parse_action,
)
from palaestra.envs.web.browser import BrowserConfig, BrowserError, BrowserHost, shared_host
from palaestra.envs.web.snapshot import compact_snapshot, find_ref, snapshot_ids
from palaestra.envs.web.tasks import TASKS, TaskInstance, WebTask

__all__ = ["WebEnv"]

_ACTION_TIMEOUT_MS = 2000
_TEXT_PROMPT = """You are using a web browser to complete a task. Each observation shows the task and the current \
page as an accessibility tree: one element per line with its role, its name and its id in brackets, e.g. \
`- button "Save" [12]`. Act on the page with one action per reply, written alone on the last line:
  click [N]            click element N
  type [N] "text"      replace the text of field N with "text"
  select [N] "option"  choose an option of drop-down N
  press "Enter"        press a key (Enter, Tab, ArrowDown, ...)
  scroll down          (or: scroll up)
  stop                 end the task
Use only ids shown in the latest page."""
_GUI_PROMPT = """You are using a web browser to complete a task. Each observation shows the task and a \
screenshot of the page ({width}x{height} pixels, origin at the top left). Act with one action per reply, \
written alone on the last line:
  click(x, y)          click at pixel x, y
  type("text")         type text into the focused field
  key("Enter")         press a key (Enter, Tab, Control+A, ...)
  scroll(dx, dy)       scroll the page by dx, dy pixels
  stop()               end the task"""


@functools.cache
def _static(name: str) -> str:
    """A bundled static file's text (read once per process)."""
    return resources.files("palaestra.envs.web").joinpath(f"static/{name}").read_text()


class WebEnv(TextEnv):
    """One bundled web task family in Chromium.

    Args:
        task: the task family's name (see `palaestra.envs.web.tasks.TASKS`).
        mode: "text" (accessibility tree, element ids) or "gui" (screenshot, coordinates).
        reward: "dense" (progress increments) or "sparse" (1 on success).
        max_steps: step limit (default: the family's own).
        viewport: page size in pixels (width, height); also the screenshot size in GUI mode.
        browser: how to launch Chromium (`BrowserConfig` fields), or a `BrowserHost` to use.
        render_mode: None, "ansi" (the transcript) or "rgb_array" (a screenshot).
    """

    metadata: dict[str, Any] = {  # noqa: RUF012 (gym.Env's type)
        "render_modes": ["ansi", "rgb_array"],
        "render_fps": 1,
        "blocking_step": True,
    }

    def __init__(
        self,
        task: str,
        *,
        mode: Mode = "text",
        reward: Literal["dense", "sparse"] = "dense",
        max_steps: int | None = None,
        viewport: tuple[int, int] = (480, 360),
        browser: BrowserConfig | dict[str, Any] | BrowserHost | None = None,
        render_mode: str | None = None,
    ):
        if task not in TASKS:
            raise ValueError(f"unknown web task {task!r}; known: {', '.join(sorted(TASKS))}")
        if mode not in ("text", "gui"):
            raise ValueError(f"mode={mode!r}; expected 'text' or 'gui'")
        if reward not in ("dense", "sparse"):
            raise ValueError(f"reward={reward!r}; expected 'dense' or 'sparse'")
        width, height = (int(v) for v in viewport)
        if not (100 <= width <= 4096 and 100 <= height <= 4096):
            raise ValueError(f"viewport={viewport}; width and height must be in [100, 4096] pixels")
        self.task: WebTask = TASKS[task]
        super().__init__(max_turns=max_steps or self.task.max_steps, render_mode=render_mode)
        self.mode: Mode = mode
        self.reward_mode = reward
        self.viewport = (width, height)
        self._browser = browser
        if mode == "gui":
            self.observation_space = spaces.Dict(
                {
                    "text": TextSpace(),
                    "screenshot": spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8),
                }
            )
            self.system_prompt = _GUI_PROMPT.format(width=width, height=height)
        else:
            self.system_prompt = _TEXT_PROMPT
        self._host: BrowserHost | None = None
        self._context: Any = None
        self._page: Any = None
        self._instance: TaskInstance | None = None
        self._progress = 0.0
        self._ids: frozenset[str] = frozenset()
        self._last_screenshot: np.ndarray | None = None
        self._state: dict[str, Any] = {}
        self._script = self.task.script_source()

    # -- browser plumbing --------------------------------------------------------------------------
    @property
    def _read_ms(self) -> float:
        """Playwright timeout of the reads that build an observation: a loaded machine is not a hang."""
        return self._browser_host().config.call_timeout_s * 1000

    def _browser_host(self) -> BrowserHost:
        if self._host is None:
            browser = self._browser
            self._host = browser if isinstance(browser, BrowserHost) else shared_host(browser)
        return self._host

    def _drop_context(self) -> None:
        context, self._context, self._page = self._context, None, None
        if context is not None and self._host is not None:
            self._host.close_context(context)

    def _call(self, fn: Any) -> Any:
        """Run `await fn()` on the browser loop; a browser failure drops this episode's context."""
        try:
            return self._browser_host().run(fn)
        except BrowserError:
            self._drop_context()
            raise

    # -- gymnasium hooks ---------------------------------------------------------------------------
    def _reset(self, options: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
        self._drop_context()
        self._instance = self.task.generate(self.np_random)
        host = self._browser_host()
        width, height = self.viewport
        self._context, self._page = host.new_page(
            self._document(self._instance), viewport={"width": width, "height": height}
        )
        self._context.set_default_timeout(_ACTION_TIMEOUT_MS)
        state = self._state = self._call(lambda: self._observe(None))
        self._progress = state["progress"]
        observation = self._observation(state, step=1, action_error=None)
        info = {"task_id": f"{self.task.name}-{self._instance.digest}", **self._state_info(state, None)}
        return observation, info

    def _step(self, action: str) -> StepOutcome:
        try:
            parsed = parse_action(action, self.mode)
        except ActionParseError as exc:
            state = self._state  # the page did not change
            return StepOutcome(
                observation=self._observation(
                    state, step=self._turn + 2, action_error=None, format_error=str(exc)
                ),
                format_error=str(exc),
                info=self._state_info(state, None),
            )

        async def act() -> dict[str, Any]:
            error = None if parsed.op == "stop" else await self._execute(parsed)
            return await self._observe(error)

        state = self._state = self._call(act)
        progress = 1.0 if state["success"] else state["progress"]
        if self.reward_mode == "dense":
            reward = progress - self._progress
        else:
            reward = 1.0 if state["success"] and not self._success else 0.0
        self._progress = progress
        return StepOutcome(
            observation=self._observation(state, step=self._turn + 2, action_error=state["action_error"]),
            reward=float(reward),
            terminated=bool(state["done"]) or parsed.op == "stop",
            success=bool(state["success"]),
            info=self._state_info(state, state["action_error"]),
        )

    def _unreadable(self, action: Any) -> StepOutcome:
        """A reply that is not text or is too long: the format-error observation of `_step`, so GUI
        observations stay dicts with a screenshot."""
        outcome = super()._unreadable(action)
        state = self._state  # the page did not change
        outcome.observation = self._observation(
            state, step=self._turn + 2, action_error=None, format_error=outcome.format_error
        )
        outcome.info = self._state_info(state, None)
        return outcome

    def close(self) -> None:
        self._drop_context()
        super().close()

    def render(self) -> Any:
        if self.render_mode == "rgb_array":
            if self._page is None:
                return None
            return self._call(self._screenshot)
        return super().render()

    def page_html(self) -> str:
        """The current task's whole page as one self-contained HTML document (to save or inspect)."""
        if self._instance is None:
            raise RuntimeError("call reset() before page_html()")
        return self._document(self._instance)

    # -- page work (on the browser loop) -----------------------------------------------------------
    def _document(self, instance: TaskInstance) -> str:
        data = json.dumps(instance.data).replace("</", "<\\/")
        return (
            "<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{escape(self.task.name)}</title><style>{_static('common.css')}</style>"
            f"<script>window.TASK = {data};</script>"
            f"<script>{_static('runtime.js')}</script><script>{self._script}</script>"
            "</head><body><div id='app'></div></body></html>"
        )

    async def _execute(self, action: WebAction) -> str | None:
        """Perform `action` on the page; returns why it failed, or None."""
        page = self._page
        try:
            if self.mode == "text":
                if action.ref is not None and action.ref not in self._ids:
                    return f"there is no element [{action.ref[1:]}] on the page"
                if action.op == "click":
                    await page.locator(f"aria-ref={action.ref}").click(force=True)
                elif action.op == "type":
                    await page.locator(f"aria-ref={action.ref}").fill(action.text or "", force=True)
                elif action.op == "select":
                    await page.locator(f"aria-ref={action.ref}").select_option(label=action.text, force=True)
                elif action.op == "press":
                    await page.keyboard.press(action.text or "")
                elif action.op == "scroll":
                    await page.evaluate("dy => window.scrollBy(0, dy)", action.dy * self.viewport[1] * 0.8)
            else:
                width, height = self.viewport
                if action.op == "click":
                    if not (0 <= action.x < width and 0 <= action.y < height):
                        return f"({action.x:g}, {action.y:g}) is outside the {width}x{height} screen"
                    await page.mouse.click(action.x, action.y)
                elif action.op == "type":
                    await page.keyboard.type(action.text or "")
                elif action.op == "key":
                    await page.keyboard.press(action.text or "")
                elif action.op == "scroll":
                    await page.evaluate("([dx, dy]) => window.scrollBy(dx, dy)", [action.dx, action.dy])
        except Exception as exc:
            if type(exc).__name__ not in ("Error", "TimeoutError"):  # Playwright's action errors
                raise
            return _short_error(exc)
        return None

    async def _observe(self, action_error: str | None) -> dict[str, Any]:
        page = self._page
        status = page.evaluate("mode => palaestra.status(mode)", self.mode)
        if self.mode == "text":
            # two independent reads of the settled page, in flight together
            state, snapshot = await asyncio.gather(
                status, page.aria_snapshot(mode="ai", timeout=self._read_ms)
            )
            expert = state.get("expert")
            if expert and expert.get("target"):
                expert["ref"] = find_ref(
                    snapshot,
                    expert.get("role"),
                    expert.get("name"),
                    expert.get("nth", 0),
                    expert.get("count", 1),
                )
                if expert["ref"] is None:  # the guess is not in the tree: ask Playwright, then re-snapshot
                    marked = await page.locator("[data-palaestra-expert]").first.aria_snapshot(
                        mode="ai", timeout=self._read_ms
                    )
                    ids = re.findall(r"\[ref=(e\d+)\]", marked)
                    expert["ref"] = ids[0] if ids else None
                    # `aria-ref=` resolves against the latest snapshot: take the page's again
                    snapshot = await page.aria_snapshot(mode="ai", timeout=self._read_ms)
            state["page"] = compact_snapshot(snapshot)
            self._ids = snapshot_ids(snapshot)
        else:
            state, self._last_screenshot = await asyncio.gather(status, self._screenshot())
            expert = state.get("expert")
        state["action_error"] = action_error
        state["expert_action"] = self._expert_text(expert)
        return state

    async def _screenshot(self) -> np.ndarray:
        from PIL import Image
        from playwright.async_api import Error as PlaywrightError

        for attempt in range(3):
            try:
                png = await self._page.screenshot(
                    type="png", animations="disabled", caret="hide", timeout=self._read_ms
                )
                break
            except PlaywrightError as exc:
                # a busy renderer can miss a frame ("Unable to capture screenshot"); the next one comes
                if "Unable to capture screenshot" not in str(exc) or attempt == 2:
                    raise
        return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.uint8)

    # -- observations and info ---------------------------------------------------------------------
    def _expert_text(self, expert: dict[str, Any] | None) -> str:
        if not expert:
            return format_action(WebAction("stop"), self.mode)
        action = WebAction(
            op=expert["op"],
            ref=expert.get("ref"),
            text=expert.get("text"),
            x=float(expert.get("x", 0)),
            y=float(expert.get("y", 0)),
            dx=float(expert.get("dx", 0)),
            dy=float(expert.get("dy", 0)),
        )
        return format_action(action, self.mode)

    def _state_info(self, state: dict[str, Any], action_error: str | None) -> dict[str, Any]:
        return {
            "expert_action": state["expert_action"],
            "progress": 1.0 if state["success"] else float(state["progress"]),
            "action_error": action_error,
            "web_task": self.task.name,
        }

    def _observation(
        self,
        state: dict[str, Any],
        *,
        step: int,
        action_error: str | None,
        format_error: str | None = None,
    ) -> Any:
        """The observation after `step - 1` actions (`step` is the number of the next action)."""
        assert self._instance is not None
        lines = [f"Task: {self._instance.instruction}"]
        if not state["done"]:
            lines.append(f"Step {min(step, self.max_turns)} of {self.max_turns}.")
        if format_error:
            lines.append(
                f"Your reply had no valid action ({format_error}). Expected: "
                f"{TEXT_FORMAT if self.mode == 'text' else GUI_FORMAT}"
            )
        if action_error:
            lines.append(f"Your last action failed: {action_error}.")
        if state["done"]:
            lines.append("The task is complete." if state["success"] else "The task ended unsuccessfully.")
        if self.mode == "text":
            lines += ["Page:", state["page"]]
            return "\n".join(lines)
        assert self._last_screenshot is not None
        return {"text": "\n".join(lines), "screenshot": self._last_screenshot.copy()}


def _short_error(exc: Exception) -> str:
    """The first line of a Playwright error, without its call log."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    message = re.sub(r"^(Locator|Page|Keyboard|Mouse)\.\w+:\s*", "", message)
    message = re.sub(r"^Error:\s*", "", message)
    return message[:200]
