"""The `palaestra` command line: `envs list|show`, `eval`, `compare`, `train`, `export`, `placement`, `demos`,
`report`, `view`.

Run `palaestra --help` or `palaestra COMMAND --help` for the options.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
import yaml
from rich.markup import escape
from rich.table import Table

from palaestra.envs.registration import EnvUnavailableError, UnknownEnvError, env_card, list_envs, make
from palaestra.terminal import error_line, make_console

if TYPE_CHECKING:
    from palaestra.agents.base import Policy

app = typer.Typer(help="Train and evaluate LLM agents with multi-turn RL.", no_args_is_help=True)
envs_app = typer.Typer(help="Browse the registered environments.", no_args_is_help=True)
app.add_typer(envs_app, name="envs")
console = make_console()
err_console = make_console(stderr=True)


def _fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: MESSAGE` as one line (never wrapped at the terminal width) and exit with `code`."""
    error_line(err_console, message)
    return typer.Exit(code)


def _parse_kwargs(pairs: list[str] | None) -> dict[str, Any]:
    """Parse repeated KEY=VALUE options; values are YAML scalars (`3`, `true`, `0.5`, `text`)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"expected KEY=VALUE, got {pair!r}")
        out[key] = yaml.safe_load(value) if value else ""
    return out


@envs_app.command("list")
def envs_list(
    family: Annotated[str | None, typer.Option(help="Only this family (Math, Code, ...).")] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="Also the envs that cannot run here, with the reason and the fix.")
    ] = False,
) -> None:
    """List the registered envs that can run here: id, family, turns, description."""
    table = Table(title="palaestra environments")
    for column in ("id", "family", "turns", "reward", "description"):
        table.add_column(column, overflow="fold")
    cards = list_envs(family, include_unavailable=True)
    hidden = 0
    for card in cards:
        low, high = card.reward_range
        reason = card.unavailable
        if reason is not None and not all_:
            hidden += 1
            continue
        description = card.description if reason is None else f"[red]unavailable here:[/] {escape(reason)}"
        table.add_row(card.id, card.family, str(card.max_turns), f"[{low:g}, {high:g}]", description)
    console.print(table)
    if hidden:
        console.print(
            f"{hidden} more registered env(s) cannot run here; `palaestra envs list --all` shows them "
            "with the reason and the fix."
        )


@envs_app.command("show")
def envs_show(
    env_id: Annotated[str, typer.Argument(help="Env id, e.g. palaestra/Math-Arith-v0.")],
    seed: Annotated[int, typer.Option(help="Seed of the sample task shown.")] = 0,
) -> None:
    """Show an env's card, system prompt and a sample first observation."""
    try:
        card = env_card(env_id)
    except UnknownEnvError as exc:
        raise _fail(str(exc)) from None
    console.print(f"[bold]{card.id}[/]  ({card.family})")
    console.print(card.description)
    console.print(f"max turns: {card.max_turns}   reward range: {card.reward_range}")
    console.print(f"entry point: {card.entry_point}   kwargs: {card.kwargs}")
    if (reason := card.unavailable) is not None:
        console.print(f"[red]unavailable here:[/] {escape(reason)}")
        return
    if card.required_kwargs:
        console.print(f"required kwargs: {', '.join(card.required_kwargs)} (no sample shown)")
        return
    try:
        env = make(card.id)
    except EnvUnavailableError as exc:
        raise _fail(str(exc)) from None
    observation, _ = env.reset(seed=seed)
    console.rule("system prompt")
    console.print(getattr(env.unwrapped, "system_prompt", ""), markup=False)
    console.rule(f"first observation (seed={seed})")
    console.print(observation, markup=False)
    env.close()


@app.command("eval")
def eval_command(
    agent: Annotated[
        list[str],
        typer.Option(
            help="Agent spec: scripted:oracle, hf:smollm2-135m, hf:/path, ... (repeatable with --suite)."
        ),
    ],
    env: Annotated[str | None, typer.Option("--env", help="Env id to evaluate on.")] = None,
    suite: Annotated[
        str | None,
        typer.Option(help="Benchmark suite: a name in configs/suites/ (math-core, ...) or a .yaml path."),
    ] = None,
    chunk_size: Annotated[
        int,
        typer.Option(
            help="Episodes per chunk written to --out as it finishes (--suite: the unit of resuming)."
        ),
    ] = 32,
    episodes: Annotated[int, typer.Option(help="Number of tasks (seeds seed..seed+N-1).")] = 100,
    seed: Annotated[int, typer.Option(help="First task seed.")] = 0,
    out: Annotated[Path | None, typer.Option(help="Write results.json + trajectories.parquet here.")] = None,
    env_kwarg: Annotated[list[str] | None, typer.Option(help="Env kwarg KEY=VALUE (repeatable).")] = None,
    agent_option: Annotated[
        list[str] | None, typer.Option(help="Agent option KEY=VALUE, e.g. dtype=bfloat16 (repeatable).")
    ] = None,
    group_size: Annotated[int, typer.Option(help="Samples per task.")] = 1,
    max_turns: Annotated[
        int | None, typer.Option(help="Cap on turns per episode (default: the env's).")
    ] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Token budget per reply.")] = 256,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling mass.")] = 1.0,
    sampling_seed: Annotated[int | None, typer.Option(help="Seed for sampling.")] = 0,
    step_timeout: Annotated[
        float | None, typer.Option(help="Per-step env timeout in seconds (runs envs in threads).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
    opponent: Annotated[
        list[str] | None,
        typer.Option(
            help="Multi-player games: play against this opponent (repeatable): a scripted player "
            "(random, heuristic, optimal, ...), 'self', or an agent spec (hf:..., scripted:oracle)."
        ),
    ] = None,
) -> None:
    """Evaluate an agent on an env (--env) or agents on a benchmark suite (--suite) and print the results.

    Every input is checked before a model loads or an episode runs. With --out, results are written as
    chunks of episodes finish. With --suite, results go to --out (default runs/eval/SUITE); re-running on
    the same folder resumes.
    """
    from palaestra.agents.base import SamplingParams
    from palaestra.agents.spec import check_spec
    from palaestra.evaluation import evaluate, summary_table
    from palaestra.evaluation.checks import check_env, check_opponents, check_out_dir
    from palaestra.rollout.runner import RolloutConfig

    if (env is None) == (suite is None):
        raise _fail("pass exactly one of --env ID or --suite NAME")
    agent_options, env_kwargs = _parse_kwargs(agent_option), _parse_kwargs(env_kwarg)
    _check_flags(
        (chunk_size >= 1, f"--chunk-size={chunk_size}; it must be >= 1"),
        (episodes >= 1, f"--episodes={episodes}; it must be >= 1"),
        (group_size >= 1, f"--group-size={group_size}; it must be >= 1"),
        (max_turns is None or max_turns >= 1, f"--max-turns={max_turns}; it must be >= 1"),
        (max_new_tokens >= 1, f"--max-new-tokens={max_new_tokens}; it must be >= 1"),
        (temperature >= 0, f"--temperature={temperature}; it must be >= 0 (0 = greedy)"),
        (0 < top_p <= 1, f"--top-p={top_p}; it must be in (0, 1]"),
        (step_timeout is None or step_timeout > 0, f"--step-timeout={step_timeout}; it must be > 0 seconds"),
    )
    try:
        for spec in agent:
            check_spec(spec, **agent_options)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if suite is not None:
        from palaestra.evaluation.suite_cli import eval_suite

        eval_suite(suite, agent, out, agent_options=agent_options, chunk_size=chunk_size)
        return
    if len(agent) != 1:
        raise _fail(f"--env takes one --agent, got {len(agent)}; use --suite to evaluate several agents")
    try:
        env_id = check_env(env, env_kwargs)
        if opponent:
            check_opponents(env_id, env_kwargs, opponent)
        if out is not None:
            check_out_dir(out)
        config = RolloutConfig(
            group_size=group_size,
            max_turns=max_turns,
            step_timeout_s=step_timeout,
            env_executor="thread" if step_timeout is not None else "auto",
            sampling=SamplingParams(
                max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=sampling_seed
            ),
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None
    policy = _load_policy(agent[0], agent_options)
    if opponent:
        _eval_against(policy, env_id, opponent, episodes, seed, env_kwargs, config, out)
        return
    try:
        result = evaluate(
            policy,
            env_id,
            episodes=episodes,
            seed=seed,
            env_kwargs=env_kwargs,
            config=config,
            progress=progress,
            out_dir=out,
            chunk_size=chunk_size,
        )
    except (ValueError, TypeError) as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write the results to {out}: {exc}", code=1) from None
    console.print(summary_table([result]))
    if out is not None:
        console.print(f"results: {out / 'results.json'}   trajectories: {out / 'trajectories.parquet'}")
    errors = [t.error for t in result.trajectories if t.error]
    if errors:
        err_console.print(f"[yellow]{len(errors)} episode(s) failed; first: {errors[0]}[/]")


def _check_flags(*checks: tuple[bool, str]) -> None:
    """Fail with the message of the first check that does not hold."""
    for ok, message in checks:
        if not ok:
            raise _fail(message)


def _load_policy(spec: str, options: dict[str, Any]) -> Policy:
    """Build a policy whose spec passed `check_spec`; a model that fails to load is one error line."""
    from palaestra.agents.spec import make_policy

    try:
        return make_policy(spec, **options)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None


def _eval_against(policy, env_id, opponents, episodes, seed, env_kwargs, config, out) -> None:
    from palaestra.evaluation import evaluate_against, summary_table, write_results

    results = []
    try:
        for spec in opponents:
            rival = _load_policy(spec, {}) if ":" in spec else spec
            result = evaluate_against(
                policy, env_id, rival, episodes=episodes, seed=seed, env_kwargs=env_kwargs, config=config
            )
            results.append(result)
            if out is not None:  # each opponent's results as soon as they are in
                path = write_results(result, out / f"vs-{spec.replace(':', '-').replace('/', '_')}")
                console.print(f"results vs {spec}: {path}")
    except (ValueError, TypeError) as exc:
        raise _fail(str(exc)) from None
    except OSError as exc:
        raise _fail(f"cannot write the results to {out}: {exc}", code=1) from None
    console.print(summary_table(results))


@app.command("compare")
def compare_command(
    results: Annotated[list[Path], typer.Argument(help="results.json files (or folders holding one).")],
) -> None:
    """Rank evaluation results side by side: score with 95% CI, gap to the leader and its significance."""
    from palaestra.evaluation.compare import leaderboard, leaderboard_table, load_entries, per_env_table

    try:
        board = leaderboard(load_entries(results))
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(leaderboard_table(board))
    console.print(per_env_table(board))


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="A training run or evaluation output folder.")],
) -> None:
    """Write RUN_DIR/report.html (plots and tables, self-contained) and the trajectory viewer beside it."""
    from palaestra.reports import write_report

    try:
        path = write_report(run_dir)
    except (FileNotFoundError, ValueError) as exc:
        raise _fail(str(exc)) from None
    console.print(f"report: {path}   viewer: {path.parent / 'viewer' / 'index.html'}")


@app.command("view")
def view_command(
    run_dir: Annotated[Path, typer.Argument(help="A training run or evaluation output folder.")],
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 8765,
) -> None:
    """Serve the trajectory viewer of RUN_DIR on http://127.0.0.1:PORT (Ctrl-C stops it)."""
    from palaestra.reports import build_viewer, load_run, serve

    try:
        run = load_run(run_dir)
        if not any(e.files for ev in run.evaluations for e in ev.envs.values()):
            raise ValueError(
                f"nothing to view in {run_dir}: it holds no episodes; the viewer shows the trajectories of "
                "an evaluation (trajectories.parquet beside results.json, from palaestra eval --out) or a "
                "training run's eval/ folder"
            )
        build_viewer(run)
    except (OSError, ValueError) as exc:
        raise _fail(str(exc)) from None
    import contextlib
    import threading

    try:
        with serve(run_dir, port=port) as url:
            console.print(f"trajectory viewer: {url}viewer/index.html   (Ctrl-C to stop)")
            with contextlib.suppress(KeyboardInterrupt):
                threading.Event().wait()
    except OSError as exc:
        raise _fail(f"cannot serve on 127.0.0.1:{port} ({exc}); pass another --port, or --port 0") from None


@app.command("train")
def train_command(
    config: Annotated[Path, typer.Argument(help="Training config YAML (see configs/).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Overrides like optimizer.lr=1e-5 run.steps=10.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue the run in run.output_dir/run.name from its newest checkpoint. A missing or empty "
            "folder starts from step 0 (with a notice); a run without a complete checkpoint is an error."
        ),
    ] = False,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Start over in a folder that holds a previous run: it is moved aside to NAME.old-<time> "
            "next to it (never deleted)."
        ),
    ] = False,
) -> None:
    """Train with the algorithm in CONFIG; evaluates on the held-out envs before and after.

    A run folder holds one run: starting again where a run left metrics, checkpoints or a final model is
    refused unless --resume or --overwrite says what to do with it. Envs and the folder are checked
    before the model loads. A run stopped early (failing env episodes, steps with nothing to train on,
    a failed evaluation) saves a checkpoint first and exits with code 1.
    """
    from palaestra.agents.models import check_model_name
    from palaestra.config import ConfigError, load_config
    from palaestra.trainers import make_trainer
    from palaestra.trainers.core.checkpoint import checkpoint_step
    from palaestra.trainers.core.preflight import RunSetupError, check_envs, prepare_run_dir
    from palaestra.trainers.core.trainer import RunStopped

    try:
        cfg = load_config(config, overrides or [])
        check_model_name(cfg.model.name)
        check_envs(cfg)
        # under torchrun every rank runs this; rank 0 alone moves a previous run aside
        start = prepare_run_dir(
            cfg.run.run_dir, resume=resume, overwrite=overwrite, main=os.environ.get("RANK", "0") == "0"
        )
    except (ConfigError, RunSetupError) as exc:
        raise _fail(str(exc)) from None
    except ValueError as exc:  # the model name
        raise _fail(f"model.name: {exc}") from None
    if start.message:
        console.print(start.message, markup=False, highlight=False)
    if start.resume_from is not None and checkpoint_step(start.resume_from) >= cfg.run.steps:
        console.print(f"the run already reached run.steps={cfg.run.steps}; raise run.steps to train further")
    try:
        trainer = make_trainer(cfg)
        out = trainer.train(start=start)  # envs and folder are checked: the trainer does not repeat it
    except RunStopped as exc:
        raise _fail(str(exc), code=1) from None
    if trainer.dist.is_main:  # under torchrun: one report, from rank 0
        console.print(_before_after_table(out["before"], out["after"]))
        console.print(f"run directory: {cfg.run.run_dir}   final model: {cfg.run.run_dir / 'final'}")
        if cfg.logging.report:
            console.print(
                f"report: {cfg.run.run_dir / 'report.html'}   (browse episodes: palaestra view {cfg.run.run_dir})"
            )


def _before_after_table(before: dict[str, float] | None, after: dict[str, float] | None) -> Table:
    table = Table(title="held-out evaluation")
    for column in ("metric", "before", "after", "change"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in sorted((after or {}).keys()):
        b = (before or {}).get(key)
        a = (after or {})[key]
        change = f"{a - b:+.3f}" if b is not None else ""
        table.add_row(key, f"{b:.3f}" if b is not None else "-", f"{a:.3f}", change)
    return table


@app.command("demos")
def demos_command(
    env: Annotated[str, typer.Option("--env", help="Env id whose scripted expert plays.")],
    episodes: Annotated[int, typer.Option(help="Number of tasks (seeds seed..seed+N-1).")] = 100,
    out: Annotated[Path, typer.Option(help="Folder for demos.parquet and summary.json.")] = Path(
        "runs/demos"
    ),
    seed: Annotated[int, typer.Option(help="First task seed.")] = 0,
    env_kwarg: Annotated[list[str] | None, typer.Option(help="Env kwarg KEY=VALUE (repeatable).")] = None,
    keep_failures: Annotated[bool, typer.Option(help="Keep the expert's failed episodes too.")] = False,
) -> None:
    """Write expert demonstrations (offline data for semi-online RL and SFT) of an env."""
    from palaestra.evaluation.checks import check_env, check_out_dir
    from palaestra.rollout.demos import collect_demos, write_demos

    env_kwargs = _parse_kwargs(env_kwarg)
    _check_flags((episodes >= 1, f"--episodes={episodes}; it must be >= 1"))
    try:
        env_id = check_env(env, env_kwargs)
        check_out_dir(out)
        demos = collect_demos(
            env_id, episodes=episodes, seed=seed, env_kwargs=env_kwargs, only_success=not keep_failures
        )
    except (ValueError, TypeError) as exc:
        raise _fail(str(exc)) from None
    try:
        path = write_demos(demos, out)
    except OSError as exc:
        raise _fail(f"cannot write the demos to {out}: {exc}", code=1) from None
    console.print(
        f"{demos.env_id}: expert solved {demos.succeeded}/{demos.attempted}; "
        f"{len(demos.trajectories)} demos in {path}"
    )
    if demos.errors:
        err_console.print(f"[yellow]{len(demos.errors)} episode(s) failed; first: {demos.errors[0]}[/]")


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory (holds config.yaml and checkpoints/).")],
    out: Annotated[Path, typer.Argument(help="Folder to write the HF model to.")],
    checkpoint: Annotated[
        Path | None, typer.Option(help="Checkpoint folder (default: the run's newest).")
    ] = None,
) -> None:
    """Consolidate a checkpoint (written at any world size) into a plain HF model folder, in one process."""
    from palaestra.config import ConfigError, load_config
    from palaestra.trainers import make_trainer
    from palaestra.trainers.core.checkpoint import latest_checkpoint

    try:
        cfg = load_config(run_dir / "config.yaml")
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    path = checkpoint or latest_checkpoint(run_dir / "checkpoints")
    if path is None or not (path / "state.json").exists():
        raise _fail(f"no complete checkpoint at {path or run_dir / 'checkpoints'}")
    trainer = make_trainer(cfg)
    try:
        trainer.resume(path)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    trainer.export(out)
    console.print(f"exported {path} (step {trainer.step}) to {out}  (use as --agent hf:{out})")


@app.command("placement")
def placement_command(
    config: Annotated[Path, typer.Argument(help="Config YAML with a `placement` section (configs/scale/).")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="Overrides like placement.nodes=2 placement.mode=split.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan only; no Ray cluster needed.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    address: Annotated[str, typer.Option(help="Ray cluster address (without --dry-run).")] = "auto",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the placement groups.")] = 600.0,
) -> None:
    """Plan where trainer ranks and rollout engines run; without --dry-run, reserve it on Ray and release."""
    from palaestra.config import ConfigError, load_config
    from palaestra.placement import plan, reserve

    try:
        cfg = load_config(config, overrides or [])
    except ConfigError as exc:
        raise _fail(str(exc)) from None
    if cfg.placement is None:
        raise _fail(f"{config} has no `placement` section; see configs/scale/ for worked examples")
    layout = plan(cfg.placement)
    text = json.dumps(layout.to_dict(), indent=2) if as_json else layout.describe()
    console.print(text, markup=False, highlight=False, soft_wrap=True)
    if dry_run:
        return
    try:
        import ray

        ray.init(address=address)
        reservation = reserve(layout, timeout_s=timeout)
    except (ImportError, TimeoutError, ConnectionError) as exc:
        raise _fail(str(exc), code=1) from None
    console.print(f"reserved {len(reservation.groups)} placement group(s) on the Ray cluster; released")
    reservation.release()


@app.command("version")
def version() -> None:
    """Print the palaestra version."""
    from palaestra import __version__

    console.print(json.dumps({"palaestra": __version__}))


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
