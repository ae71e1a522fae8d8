"""Training config: YAML + overrides, and errors that name the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from palaestra.config import ConfigError, load_config

QUICKSTART = Path(__file__).parents[1] / "configs" / "quickstart.yaml"


def test_quickstart_config_is_valid():
    cfg = load_config(QUICKSTART)
    assert cfg.algorithm.name == "grpo" and cfg.rollout.group_size >= 2
    assert cfg.envs.train[0].id.startswith("palaestra/Math-")


def test_overrides_parse_yaml_scalars():
    cfg = load_config(
        QUICKSTART, ["optimizer.lr=2e-5", "run.steps=3", "algorithm.dual_clip=3.0", "run.name=x"]
    )
    assert cfg.optimizer.lr == 2e-5 and cfg.run.steps == 3 and cfg.algorithm.dual_clip == 3.0
    assert cfg.run.run_dir == Path("runs/x")


def test_unknown_key_names_the_path_and_allowed_keys():
    with pytest.raises(ConfigError) as err:
        load_config(QUICKSTART, ["optimizer.learning_rate=1e-5"])
    message = str(err.value)
    assert "optimizer.learning_rate: unknown key" in message
    assert "lr" in message and "weight_decay" in message


def test_bad_value_names_the_key_and_the_value():
    with pytest.raises(ConfigError, match=r"rollout.group_size: .*greater than or equal to 1.*got -2"):
        load_config(QUICKSTART, ["rollout.group_size=-2"])
    with pytest.raises(ConfigError, match=r"algorithm.aggregation"):
        load_config(QUICKSTART, ["algorithm.aggregation=mean"])


def test_fields_that_must_fit_together():
    with pytest.raises(ConfigError, match=r"group_size=1.*set rollout.group_size"):
        load_config(QUICKSTART, ["rollout.group_size=1"])
    with pytest.raises(ConfigError, match="norm_len"):
        load_config(QUICKSTART, ["algorithm.norm_len=100"])


def test_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("run: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(ConfigError, match="envs"):
        load_config(None, run={"steps": 1})
    with pytest.raises(ConfigError, match=r"key\.sub=value"):
        load_config(QUICKSTART, ["no-equals-sign"])
    with pytest.raises(ConfigError, match=r"is a folder, not a YAML file; pass a config file such as"):
        load_config(tmp_path)
    (tmp_path / "config.yaml").write_text("run: {}\n")  # a run folder
    with pytest.raises(ConfigError, match=r"to continue the run in it, pass .*config\.yaml with --resume"):
        load_config(tmp_path)
    (tmp_path / "latin1.yaml").write_bytes(b"run: {name: \xe9}\n")
    with pytest.raises(ConfigError, match=r"cannot read config file .*latin1\.yaml"):
        load_config(tmp_path / "latin1.yaml")


def test_stopping_rules_are_validated():
    cfg = load_config(QUICKSTART, ["run.max_skipped_steps=null", "rollout.max_env_error_fraction=0.25"])
    assert cfg.run.max_skipped_steps is None and cfg.rollout.max_env_error_fraction == 0.25
    with pytest.raises(ConfigError, match=r"rollout.max_env_error_fraction: .*greater than 0"):
        load_config(QUICKSTART, ["rollout.max_env_error_fraction=0"])
    with pytest.raises(ConfigError, match=r"run.max_skipped_steps: .*greater than or equal to 1"):
        load_config(QUICKSTART, ["run.max_skipped_steps=0"])


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.run.steps >= 1 and config.envs.train


@pytest.mark.parametrize(
    ("algorithm", "message"),
    [
        (
            {"name": "semi_online", "dynamic_sampling": True},
            "dynamic_sampling is not an option of semi_online",
        ),
        (
            {"name": "semi_online", "starpo_s_keep_ratio": 0.5},
            "starpo_s_keep_ratio is not an option of semi_online",
        ),
        ({"name": "semi_online", "overlong": "filter"}, "overlong is not an option of semi_online"),
        ({"name": "semi_online", "singleton": "zero"}, "singleton is not an option of semi_online"),
        ({"name": "gigpo", "overlong": "penalty"}, "overlong=penalty is not honoured by gigpo"),
        ({"name": "gigpo", "singleton": "zero"}, "singleton is not an option of gigpo"),
        ({"name": "critique_grpo", "kl_coef": 0.1}, "kl_coef is not an option of critique_grpo: .*no KL"),
        ({"name": "critique_grpo", "dual_clip": 3.0}, "dual_clip is not an option of critique_grpo"),
        ({"name": "cgi", "kl_coef": 0.1}, r"algorithm.kl_coef: unknown key; allowed for cgi: name, epochs"),
    ],
)
def test_an_option_the_algorithm_does_not_honour_is_an_error_naming_both(algorithm, message):
    with pytest.raises(ConfigError, match=message):
        load_config(QUICKSTART, algorithm=algorithm)


def test_honoured_options_of_the_grpo_family_still_load():
    assert (
        load_config(QUICKSTART, algorithm={"name": "gigpo", "overlong": "filter"}).algorithm.overlong
        == "filter"
    )
    assert load_config(QUICKSTART, algorithm={"name": "semi_online", "max_sampling_rounds": 2})
    assert load_config(QUICKSTART, algorithm={"name": "critique_grpo", "overlong": "penalty"})
    assert load_config(QUICKSTART, algorithm={"dual_clip": 3.0}).algorithm.name == "grpo"


def test_the_config_module_imports_no_algorithm():
    """`palaestra.config` finds algorithms through the registry: loading a GRPO config imports only grpo."""
    import os
    import subprocess
    import sys

    root = str(QUICKSTART.parents[1])
    code = (
        f"import sys; from palaestra.config import load_config; load_config({str(QUICKSTART)!r}); "
        "print(sorted(m for m in sys.modules if m.startswith('palaestra.trainers.') and 'core' not in m))"
    )
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root, env=env
    ).stdout
    assert out.strip() == "['palaestra.trainers.grpo', 'palaestra.trainers.registry']"


@pytest.mark.parametrize(
    ("algorithm", "saved"),
    [
        (
            "semi_online",
            {"singleton": "raw", "dynamic_sampling": False, "overlong": "off", "overlong_buffer": 32},
        ),
        ("gigpo", {"singleton": "raw"}),
        ("critique_grpo", {"dual_clip": None, "kl_coef": 0.0, "kl_estimator": "k3"}),
        ("cgi", {"kl_coef": 0.0, "recompute_old_logprobs": False}),
    ],
)
def test_run_folders_saved_before_the_registry_still_load(algorithm, saved):
    # earlier releases wrote every GRPO option into RUN/config.yaml, at values these algorithms ignored
    config = load_config(
        envs={"train": [{"id": "palaestra/Math-Arith-v0"}]}, algorithm={"name": algorithm, **saved}
    )
    assert config.algorithm.name == algorithm
    key = next(iter(saved))
    other = {"singleton": "zero", "dynamic_sampling": True, "overlong": "filter", "dual_clip": 3.0}
    other |= {"kl_coef": 0.1, "recompute_old_logprobs": True}
    with pytest.raises(ConfigError, match=key):  # any other value asks for what the algorithm does not do
        load_config(
            envs={"train": [{"id": "palaestra/Math-Arith-v0"}]},
            algorithm={"name": algorithm, key: other[key]},
        )


def test_a_sections_own_check_is_one_line_without_the_section_dumped():
    with pytest.raises(ConfigError) as info:
        load_config(
            envs={"train": [{"id": "palaestra/Math-Arith-v0"}]},
            algorithm={"name": "semi_online", "dynamic_sampling": True},
        )
    lines = str(info.value).splitlines()
    assert lines[1].startswith("  algorithm: dynamic_sampling is not an option of semi_online:"), lines
    assert "Value error" not in str(info.value) and "'gamma'" not in str(info.value)
