"""Web env speed: palaestra's WebEnv against a bare Playwright loop doing the same clicks, one run.

The anchor is the lower bound of any agent loop over a real browser: a bare Playwright loop in the same
Chromium that loads the same task page and, per step, performs the same action and reads the page back
(text mode: the action + `aria_snapshot(mode="ai")`; GUI mode: the action + a PNG screenshot), with no
parsing, checks, rewards, expert or info. palaestra's rows are the env as users get it (`WebEnv`: the
action DSL, the task's success/progress check, the expert's next action, the observation), including
its browser host's warm pages (`BrowserConfig.warm_pages`: the next episodes' contexts and pages are
made ahead, in the background), which the bare loop does not have.

Rows:
    step latency      p50/p95 of one step over expert episodes (single episode at a time)
    throughput        episodes/s and steps/s with 1 and `--concurrency` episodes in flight (palaestra
                      through `RolloutRunner` with the scripted expert; the bare loop through asyncio)
    step phase        `--concurrency` open episodes stepped together, their resets (context + page load)
                      untimed: steady-state step throughput of one browser, as the issue's 38 steps/s
    think time        one episode at a time with 100 ms of policy time per step (as with an LLM), with and
                      without warm pages: where preparing the next page ahead pays
    memory            Chromium's PSS with 1 and 1 + `--concurrency` open episodes; per extra episode
    BrowserGym        with `--browsergym-python PATH` (a venv with `browsergym-miniwob` and `miniwob`,
                      which pin Playwright 1.44, so not in palaestra's venv): MiniWoB's click-button and
                      login-user steps through BrowserGym's env, for reference

Run (from the repository root, Debian's chromium installed):
    python benchmarks/browser_env.py
    python benchmarks/browser_env.py --episodes 40 --concurrency 8 --browsergym-python /tmp/bgvenv/bin/python
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import statistics
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from palaestra.agents.scripted import OraclePolicy
from palaestra.envs.web import GUI_STEP_FACTOR
from palaestra.envs.web.actions import WebAction, parse_action
from palaestra.envs.web.browser import BrowserConfig, BrowserHost, close_shared, launch_kwargs
from palaestra.envs.web.env import WebEnv
from palaestra.envs.web.snapshot import compact_snapshot
from palaestra.envs.web.tasks import TASKS
from palaestra.rollout.runner import RolloutConfig, RolloutRunner, Task

VIEWPORT = {"width": 480, "height": 360}


def _env(task: str, mode: str) -> WebEnv:
    """The env as registered (GUI episodes get `GUI_STEP_FACTOR` times the text-mode step limit)."""
    factor = GUI_STEP_FACTOR if mode == "gui" else 1
    return WebEnv(task, mode=mode, max_steps=TASKS[task].max_steps * factor)  # type: ignore[arg-type]


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def record_episodes(tasks: list[str], mode: str, episodes: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """(page html, [(page text before the step, expert action)]) of `episodes` seeds per task.

    This is the workload both sides replay. The page text lets the bare loop find the same element:
    element ids are numbered in the order snapshots first see elements, and palaestra's env also
    snapshots the expert's target, so the same element can have another id in the bare loop's tree;
    both trees have the same lines, so the bare loop maps an id by its line.
    """
    out = []
    for task in tasks:
        env = _env(task, mode)
        for seed in range(episodes):
            observation, info = env.reset(seed=seed)
            html, steps, done = env.page_html(), [], False
            while not done:
                text = observation if isinstance(observation, str) else observation["text"]
                steps.append((text.split("Page:\n", 1)[-1], info["expert_action"]))
                observation, _, terminated, truncated, info = env.step(info["expert_action"])
                done = terminated or truncated
            out.append((html, steps))
        env.close()
    close_shared()
    return out


def _same_element(ref: str | None, recorded_page: str, bare_snapshot: str) -> str | None:
    """The bare tree's id of the element that has `ref` in the recorded tree (matched by line)."""
    if ref is None:
        return None
    recorded = recorded_page.splitlines()
    bare = compact_snapshot(bare_snapshot).splitlines()
    line = next(i for i, text in enumerate(recorded) if f"[{ref[1:]}]" in text)
    found = re.search(r"\[(\d+)\]", bare[line]) if line < len(bare) else None
    return f"e{found.group(1)}" if found else ref


# -- bare Playwright loop (the anchor) --------------------------------------------------------------
async def _bare_action(page: Any, action: WebAction) -> None:
    if action.op == "click" and action.ref:
        await page.locator(f"aria-ref={action.ref}").click(force=True)
    elif action.op == "type" and action.ref:
        await page.locator(f"aria-ref={action.ref}").fill(action.text or "", force=True)
    elif action.op == "select":
        await page.locator(f"aria-ref={action.ref}").select_option(label=action.text, force=True)
    elif action.op == "press" or action.op == "key":
        await page.keyboard.press(action.text or "")
    elif action.op == "click":
        await page.mouse.click(action.x, action.y)
    elif action.op == "type":
        await page.keyboard.type(action.text or "")
    elif action.op == "scroll":
        await page.evaluate("([dx, dy]) => window.scrollBy(dx, dy)", [action.dx, action.dy])


async def _open_page(browser: Any, html: str) -> tuple[Any, Any]:
    """A fresh context (network off) with the task page loaded."""
    context = await browser.new_context(viewport=VIEWPORT)
    await context.route("**/*", lambda route: route.abort())
    page = await context.new_page()
    await page.set_content(html)
    return context, page


async def _bare_episode(
    browser: Any, html: str, steps: list[tuple[str, str]], mode: str, times: list[float]
) -> None:
    context, page = await _open_page(browser, html)
    observe = (lambda: page.aria_snapshot(mode="ai")) if mode == "text" else (lambda: page.screenshot())
    seen = await observe()
    for recorded_page, text in steps:
        action = parse_action(text, mode)  # type: ignore[arg-type]
        if mode == "text":
            action = replace(action, ref=_same_element(action.ref, recorded_page, seen))
        start = time.perf_counter()
        await _bare_action(page, action)
        seen = await observe()
        times.append(time.perf_counter() - start)
    await context.close()


async def bare_run(
    workload: list[tuple[str, list[tuple[str, str]]]], mode: str, concurrency: int
) -> dict[str, float]:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**launch_kwargs())
        times: list[float] = []
        limit = asyncio.Semaphore(concurrency)

        async def one(item: tuple[str, list[tuple[str, str]]]) -> None:
            async with limit:
                await _bare_episode(browser, item[0], item[1], mode, times)

        start = time.perf_counter()
        await asyncio.gather(*(one(item) for item in workload))
        elapsed = time.perf_counter() - start
        await browser.close()
    return _summary(times, len(workload), elapsed)


async def bare_step_phase(
    workload: list[tuple[str, list[tuple[str, str]]]], concurrency: int
) -> dict[str, float]:
    """Text mode in rounds of `concurrency` episodes: open and load them all (untimed), then step them together.

    Only the step phase is timed, so this is the steady-state step throughput of `concurrency` open
    contexts in one browser (the issue's 38 steps/s measurement), without context creation and page loads.
    """
    from playwright.async_api import async_playwright

    async def opened(html: str) -> tuple[Any, Any, str]:
        context, page = await _open_page(browser, html)
        return context, page, await page.aria_snapshot(mode="ai")

    async def steps(page: Any, seen: str, recorded: list[tuple[str, str]]) -> None:
        for recorded_page, text in recorded:
            action = parse_action(text, "text")
            await _bare_action(page, replace(action, ref=_same_element(action.ref, recorded_page, seen)))
            seen = await page.aria_snapshot(mode="ai")

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(**launch_kwargs())
        timed, count = 0.0, 0
        for i in range(0, len(workload), concurrency):
            batch = workload[i : i + concurrency]
            opened_pages = await asyncio.gather(*(opened(html) for html, _ in batch))
            start = time.perf_counter()
            await asyncio.gather(
                *(
                    steps(page, seen, rec)
                    for (_, page, seen), (_, rec) in zip(opened_pages, batch, strict=True)
                )
            )
            timed += time.perf_counter() - start
            count += sum(len(rec) for _, rec in batch)
            await asyncio.gather(*(context.close() for context, _, _ in opened_pages))
        await browser.close()
    return {"steps_s": count / timed, "steps": count}


# -- palaestra --------------------------------------------------------------------------------------
def palaestra_latency(tasks: list[str], mode: str, episodes: int) -> dict[str, float]:
    times: list[float] = []
    start = time.perf_counter()
    for task in tasks:
        env = _env(task, mode)
        for seed in range(episodes):
            _, info = env.reset(seed=seed)
            done = False
            while not done:
                t = time.perf_counter()
                _, _, terminated, truncated, info = env.step(info["expert_action"])
                times.append(time.perf_counter() - t)
                done = terminated or truncated
            assert info["success"], f"expert failed on {task} seed {seed}"
        env.close()
    elapsed = time.perf_counter() - start
    close_shared()
    return _summary(times, len(tasks) * episodes, elapsed)


def palaestra_throughput(tasks: list[str], mode: str, episodes: int, concurrency: int) -> dict[str, float]:
    suffix = "-gui" if mode == "gui" else ""
    jobs = [Task(f"palaestra/Web-{task}-v0{suffix}", seed=s) for task in tasks for s in range(episodes)]
    runner = RolloutRunner(OraclePolicy(), RolloutConfig(max_concurrency=concurrency, env_executor="thread"))
    start = time.perf_counter()
    trajectories = asyncio.run(runner.run(jobs))
    elapsed = time.perf_counter() - start
    runner.close()
    close_shared()
    failed = [t.error for t in trajectories if not t.success]
    assert not failed, failed[:3]
    steps = sum(t.num_turns for t in trajectories)
    return {"episodes_s": len(jobs) / elapsed, "steps_s": steps / elapsed}


def palaestra_step_phase(tasks: list[str], episodes: int, concurrency: int) -> dict[str, float]:
    """`bare_step_phase` for `WebEnv`: rounds of `concurrency` episodes reset together (untimed), then
    stepped together by the expert, one thread per env (as `RolloutRunner` runs blocking envs)."""
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(task, seed) for task in tasks for seed in range(episodes)]
    timed, count = 0.0, 0

    def reset(env: WebEnv, seed: int) -> dict[str, Any]:
        return env.reset(seed=seed)[1]

    def run(env: WebEnv, info: dict[str, Any]) -> int:
        done, n = False, 0
        while not done:
            _, _, terminated, truncated, info = env.step(info["expert_action"])
            done, n = terminated or truncated, n + 1
        assert info["success"], "expert failed"
        return n

    with ThreadPoolExecutor(concurrency) as pool:
        for i in range(0, len(jobs), concurrency):
            batch = jobs[i : i + concurrency]
            envs = [_env(task, "text") for task, _ in batch]  # cheap: they share one browser
            infos = list(pool.map(reset, envs, [seed for _, seed in batch]))
            start = time.perf_counter()
            count += sum(pool.map(run, envs, infos))
            timed += time.perf_counter() - start
            for env in envs:
                env.close()
    close_shared()
    return {"steps_s": count / timed, "steps": count}


def palaestra_think_time(
    tasks: list[str], episodes: int, think_s: float, warm_pages: int
) -> dict[str, float]:
    """One episode at a time with `think_s` of policy time before each step (an LLM's generation).

    The browser is idle while the policy thinks; that is when warm pages get made.
    """
    host = BrowserHost(BrowserConfig(warm_pages=warm_pages))
    resets: list[float] = []
    steps, start = 0, time.perf_counter()
    for task in tasks:
        env = WebEnv(task, browser=host)
        for seed in range(episodes):
            t = time.perf_counter()
            _, info = env.reset(seed=seed)
            resets.append(time.perf_counter() - t)
            done = False
            while not done:
                time.sleep(think_s)
                _, _, terminated, truncated, info = env.step(info["expert_action"])
                steps, done = steps + 1, terminated or truncated
        env.close()
    elapsed = time.perf_counter() - start
    host.close()
    return {
        "reset_p50_ms": _pct(resets, 0.5),
        "episodes_s": len(resets) / elapsed,
        "steps_s": steps / elapsed,
    }


def _summary(times: list[float], episodes: int, elapsed: float) -> dict[str, float]:
    return {
        "p50_ms": _pct(times, 0.5),
        "p95_ms": _pct(times, 0.95),
        "mean_ms": statistics.fmean(times) * 1000,
        "episodes_s": episodes / elapsed,
        "steps_s": len(times) / elapsed,
    }


def chromium_pss_mib() -> float:
    total = 0
    for proc in psutil.Process().children(recursive=True):
        try:
            if "chrom" in proc.name():
                total += proc.memory_full_info().pss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return total / 2**20


def memory_per_episode(extra: int) -> dict[str, float]:
    host = BrowserHost()
    envs = [WebEnv("Login", browser=host)]
    envs[0].reset(seed=0)
    host.wait_idle()  # the warm pages are made: both counts include them
    one = chromium_pss_mib()
    for i in range(extra):
        envs.append(WebEnv("Login", browser=host))
        envs[-1].reset(seed=i + 1)
    host.wait_idle()
    many = chromium_pss_mib()
    for env in envs:
        env.close()
    host.close()
    return {"one_mib": one, "many_mib": many, "per_episode_mib": (many - one) / extra}


# -- BrowserGym (optional, its own venv) ------------------------------------------------------------
BROWSERGYM_SCRIPT = textwrap.dedent(
    """
    import json, os, statistics, sys, time
    import gymnasium as gym
    import miniwob, browsergym.miniwob  # noqa: F401  (registers browsergym/miniwob.*)
    from playwright.sync_api import BrowserType
    # BrowserGym launches Playwright's bundled Chromium (its env and its chat window); use Debian's
    _launch = BrowserType.launch
    BrowserType.launch = lambda self, **kw: _launch(self, **{"executable_path": "/usr/bin/chromium", **kw})
    episodes = int(sys.argv[1])
    actions = {"click-button": None, "login-user": None}
    out = {}
    for task in actions:
        env = gym.make(f"browsergym/miniwob.{task}", headless=True)
        times = []
        for seed in range(episodes):
            obs, info = env.reset(seed=seed)
            # BrowserGym passes its own launch flags (Playwright's defaults already keep Chromium quiet);
    # BrowserGym's MiniWoB envs have no expert: one action per episode (a click on the first
            # button by its bid), which is enough to time a step (action + observation extraction)
            bids = [n["browsergym_id"] for n in obs["axtree_object"]["nodes"]
                    if n.get("role", {}).get("value") == "button" and "browsergym_id" in n]
            t = time.perf_counter()
            env.step(f"click('{bids[0]}')" if bids else "noop()")
            times.append(time.perf_counter() - t)
        env.close()
        times.sort()
        out[task] = {"p50_ms": times[len(times) // 2] * 1000, "p95_ms": times[int(0.95 * len(times))] * 1000}
    print(json.dumps(out))
    """
)


def _browsergym(python: str, episodes: int) -> dict[str, Any]:
    """Run BROWSERGYM_SCRIPT in the given interpreter; MINIWOB_URL points at the `miniwob` package's pages."""
    find = subprocess.run(
        [
            python,
            "-c",
            "import miniwob, os; print(os.path.join(os.path.dirname(miniwob.__file__), 'html', 'miniwob'))",
        ],
        capture_output=True,
        text=True,
    )
    if find.returncode != 0:
        return {
            "error": find.stderr.strip().splitlines()[-1] if find.stderr.strip() else "miniwob not importable"
        }
    env = {"MINIWOB_URL": f"file://{find.stdout.strip()}/", "PATH": "/usr/bin:/bin"}
    args = [python, "-c", BROWSERGYM_SCRIPT, str(episodes)]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["failed"])[-1][:160]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- report -----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--tasks", default="ClickButton,Login,FillForm,Shopping", help="comma-separated families"
    )
    parser.add_argument("--episodes", type=int, default=20, help="expert episodes per task and row")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--browsergym-python", default=None, help="python of a venv with browsergym-miniwob")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args()
    tasks = [t for t in args.tasks.split(",") if t in TASKS]
    raw: dict[str, Any] = {"tasks": tasks, "episodes": args.episodes, "concurrency": args.concurrency}

    print(
        f"machine: {platform.machine()}, {psutil.cpu_count()} cores, {platform.python_version()}; tasks: {tasks}"
    )
    print("\n| row | mode | step p50 ms | step p95 ms | p50 vs bare |")
    print("|---|---|---:|---:|---:|")
    for mode in ("text", "gui"):
        workload = record_episodes(tasks, mode, args.episodes)
        bare = asyncio.run(bare_run(workload, mode, 1))
        ours = palaestra_latency(tasks, mode, args.episodes)
        raw[f"latency_{mode}"] = {"bare": bare, "palaestra": ours}
        print(
            f"| bare Playwright loop (anchor) | {mode} | {bare['p50_ms']:.1f} | {bare['p95_ms']:.1f} | 1.00x |"
        )
        ratio = ours["p50_ms"] / bare["p50_ms"]
        print(f"| palaestra WebEnv | {mode} | {ours['p50_ms']:.1f} | {ours['p95_ms']:.1f} | {ratio:.2f}x |")

    print("\n| row | mode | episodes in flight | episodes/s | steps/s | steps/s vs bare |")
    print("|---|---|---:|---:|---:|---:|")
    workload = record_episodes(tasks, "text", args.episodes)
    for k in (1, args.concurrency):
        bare = asyncio.run(bare_run(workload, "text", k))
        ours = palaestra_throughput(tasks, "text", args.episodes, k)
        raw[f"throughput_text_{k}"] = {"bare": bare, "palaestra": ours}
        print(
            f"| bare Playwright loop (anchor) | text | {k} | {bare['episodes_s']:.2f} | {bare['steps_s']:.1f} | 1.00x |"
        )
        ratio = ours["steps_s"] / bare["steps_s"]
        print(
            f"| palaestra (RolloutRunner) | text | {k} | {ours['episodes_s']:.2f} | {ours['steps_s']:.1f} | {ratio:.2f}x |"
        )

    print(
        f"\n| step phase only ({args.concurrency} open episodes stepped together, resets untimed) | mode | "
        "steps/s | steps/s vs bare |"
    )
    print("|---|---|---:|---:|")
    bare = asyncio.run(bare_step_phase(workload, args.concurrency))
    ours = palaestra_step_phase(tasks, args.episodes, args.concurrency)
    raw[f"step_phase_text_{args.concurrency}"] = {"bare": bare, "palaestra": ours}
    print(f"| bare Playwright loop (anchor) | text | {bare['steps_s']:.1f} | 1.00x |")
    print(f"| palaestra WebEnv | text | {ours['steps_s']:.1f} | {ours['steps_s'] / bare['steps_s']:.2f}x |")

    print("\n| palaestra, 1 episode in flight, 100 ms policy time per step | reset p50 ms | episodes/s |")
    print("|---|---:|---:|")
    for warm in (0, BrowserConfig().warm_pages):
        row = palaestra_think_time(tasks, max(2, args.episodes // 2), 0.1, warm)
        raw[f"think_time_warm_{warm}"] = row
        print(f"| warm_pages={warm} | {row['reset_p50_ms']:.0f} | {row['episodes_s']:.2f} |")

    memory = memory_per_episode(args.concurrency)
    raw["memory"] = memory
    print("\n| Chromium PSS, 1 episode | with 1 + N episodes | per extra episode |")
    print("|---:|---:|---:|")
    print(
        f"| {memory['one_mib']:.0f} MiB | {memory['many_mib']:.0f} MiB (N={args.concurrency}) | {memory['per_episode_mib']:.1f} MiB |"
    )

    if args.browsergym_python:
        result = _browsergym(args.browsergym_python, args.episodes)
        raw["browsergym"] = result
        print("\n| BrowserGym MiniWoB (reference) | step p50 ms | step p95 ms |")
        print("|---|---:|---:|")
        if "error" in result:
            print(f"| not measured: {result['error']} | - | - |")
        for task, row in result.items():
            if task != "error":
                print(f"| {task} (one click + observation) | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(raw, indent=2))


if __name__ == "__main__":
    main()
