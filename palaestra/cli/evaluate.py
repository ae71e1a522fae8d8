"""`palaestra eval`: evaluate an agent on an env (or against opponents), or agents on a benchmark suite."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from palaestra.cli.shared import (
    check_flags,
    console,
    err_console,
    fail,
    load_policy,
    parse_kwargs,
    print_json,
)

__all__ = ["eval_against", "eval_command"]


def eval_command(
    agent: Annotated[
        list[str],
        typer.Option(
            help="Agent spec: scripted:oracle, hf:smollm2-135m, hf:/path, ... (repeatable with --suite)."
        ),
    ],
    env: Annotated[
        str | None,
        typer.Option(
            "--env", help="Env id to evaluate on; module:id imports module first (gymnasium's form)."
        ),
    ] = None,
    env_server: Annotated[
        str | None,
        typer.Option(
            help="Run --env on this OpenEnv server (ws://HOST:PORT): `palaestra serve` or any OpenEnv "
            "server (then --env is a label and --env-kwarg sets the adapter's options)."
        ),
    ] = None,
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
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the results as JSON to stdout (results.json's content; --suite: the suite's, with "
            "the leaderboard); everything else goes to stderr.",
        ),
    ] = False,
) -> None:
    """Evaluate an agent on an env (--env) or agents on a benchmark suite (--suite) and print the results.

    Every input is checked before a model loads or an episode runs. With --out, results are written as
    chunks of episodes finish. With --suite, results go to --out (default runs/eval/SUITE); re-running on
    the same folder resumes.
    """
    from palaestra.agents.base import SamplingParams
    from palaestra.agents.spec import check_spec
    from palaestra.evaluation import evaluate, summary_table
    from palaestra.evaluation.checks import ORACLE, check_env, check_expert, check_opponents, check_out_dir
    from palaestra.rollout.runner import RolloutConfig

    if (env is None) == (suite is None):
        raise fail("pass exactly one of --env ID or --suite NAME")
    agent_options, env_kwargs = parse_kwargs(agent_option), parse_kwargs(env_kwarg)
    check_flags(
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
        raise fail(str(exc)) from None
    if suite is not None:
        from palaestra.evaluation.suite_cli import eval_suite

        eval_suite(suite, agent, out, agent_options=agent_options, chunk_size=chunk_size, as_json=as_json)
        return
    if env_server is not None and (env is None or opponent):
        raise fail("--env-server runs an --env on a server; it cannot go with --suite or --opponent")
    if len(agent) != 1:
        raise fail(f"--env takes one --agent, got {len(agent)}; use --suite to evaluate several agents")
    assert env is not None  # exactly one of --env and --suite, checked above
    try:
        env_id = check_env(env, env_kwargs, server=env_server)
        if ORACLE in (*agent, *(opponent or [])) and env_server is None:
            check_expert(env_id, env_kwargs, seed=seed)
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
        raise fail(str(exc)) from None
    policy = load_policy(agent[0], agent_options)
    if opponent:
        eval_against(policy, env_id, opponent, episodes, seed, env_kwargs, config, out, as_json=as_json)
        return
    try:
        result = evaluate(
            policy,
            env_id,
            episodes=episodes,
            seed=seed,
            env_kwargs=env_kwargs,
            config=config,
            progress=progress and not as_json,  # the bar writes to stdout, which holds the JSON
            out_dir=out,
            chunk_size=chunk_size,
            server=env_server,
        )
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write the results to {out}: {exc}", code=1) from None
    if as_json:
        print_json(result.to_json())
    else:
        console.print(summary_table([result]))
    if out is not None:
        (err_console if as_json else console).print(
            f"results: {out / 'results.json'}   trajectories: {out / 'trajectories.parquet'}"
        )
    errors = [t.error for t in result.trajectories if t.error]
    if errors:
        err_console.print(f"[yellow]{len(errors)} episode(s) failed; first: {errors[0]}[/]")


def eval_against(
    policy, env_id, opponents, episodes, seed, env_kwargs, config, out, *, as_json=False
) -> None:
    """Evaluate `policy` on a multi-player env against each of `opponents` and print the table (with
    `as_json`: a JSON list of the results, one per opponent)."""
    from palaestra.evaluation import evaluate_against, summary_table, write_results

    results = []
    try:
        for spec in opponents:
            rival = load_policy(spec, {}) if ":" in spec else spec
            result = evaluate_against(
                policy, env_id, rival, episodes=episodes, seed=seed, env_kwargs=env_kwargs, config=config
            )
            results.append(result)
            if out is not None:  # each opponent's results as soon as they are in
                path = write_results(result, out / f"vs-{spec.replace(':', '-').replace('/', '_')}")
                (err_console if as_json else console).print(f"results vs {spec}: {path}")
    except (ValueError, TypeError) as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot write the results to {out}: {exc}", code=1) from None
    if as_json:
        print_json([result.to_json() for result in results])
    else:
        console.print(summary_table(results))
