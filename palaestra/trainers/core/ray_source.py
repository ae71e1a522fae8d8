"""Training rollouts on Ray workers: the `rollout.ray` config section and its rollout source.

With `rollout.ray` set, every step's group rollouts run on `RayRollout` workers (`rollout/ray_workers.py`)
instead of the trainer's process:

    rollout:
      ray:
        address: auto            # join a running cluster; `local` starts one in this process
        num_workers: 4           # rollout workers, each owning one backend
        worker_options: {num_gpus: 1}
        num_env_workers: 2       # heavy envs (browser, sandbox) in their own actors

What runs where. Rollout workers own the policy backend and run whole episodes (the ordinary
`RolloutRunner`, so the same seeds give the same trajectories as a local run); envs run inside them, or in
env workers when `num_env_workers > 0`. The trainer keeps an hf policy over its own model for evaluation
and for the algorithms' extra generation in the trainer (Critique-GRPO's critiques); semi-online and
critique-guided episodes run on the workers as jobs (`run_jobs`, `rollout/remote_jobs.py`: expert patches,
thoughts and critiques by the worker's policy or a model it builds); self-play games are not sent to Ray.

Weights. hf backend: the trainer ships its model (config, tokenizer and CPU weights, put in the object
store once) and each worker builds an `HFPolicy` from it; no shared filesystem needed. After every
update the new weights go through the object store again: all of them under full fine-tuning, only the
merged weights of the adapted layers under LoRA. vllm backend: each worker starts a vLLM engine from the
initial weights, exported to `RUN/vllm-init` (this folder must be on a filesystem every node sees), and
after every update loads the full state dict (LoRA merged) from the object store in place, as the local
vllm backend does; `agent.sleep_mode` does not apply (remote engines keep their GPUs).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from palaestra.rollout.runner import RolloutConfig, Task, sync_policy
from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.model_setup import merged_model, trained_weights, vllm_options

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from palaestra.agents.base import Policy
    from palaestra.agents.hf import HFPolicy
    from palaestra.config import TrainConfig
    from palaestra.rollout.ray_workers import WorkerJob

__all__ = ["RayConfig", "RayRollouts", "build_hf_policy", "reject_ray"]

logger = logging.getLogger(__name__)


class RayConfig(BaseModel):
    """`rollout.ray`: run the training rollouts on Ray workers (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    address: str = Field(
        "auto",
        description="Cluster to use when Ray is not initialised yet: `auto` joins the running cluster "
        "(`ray start --head`), `local` starts one in this process, or an address (`HOST:6379`, "
        "`ray://HOST:10001`).",
    )
    num_cpus: int | None = Field(
        None, ge=1, description="CPUs of a `local` cluster (default: all of this machine's)."
    )
    num_workers: int = Field(1, ge=1, description="Rollout workers, each owning one policy backend.")
    num_env_workers: int = Field(
        0, ge=0, description="Env workers that host the envs (0: envs run inside the rollout workers)."
    )
    worker_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Ray actor options of rollout workers, e.g. {num_gpus: 1} (one vLLM engine per GPU).",
    )
    env_worker_options: dict[str, Any] = Field(
        default_factory=dict, description="Ray actor options of env workers, e.g. {num_cpus: 2}."
    )
    policy_options: dict[str, Any] = Field(
        default_factory=dict,
        description="Backend options for the workers' policies over the trainer's defaults (vllm: "
        "tensor_parallel_size, gpu_memory_utilization, max_model_len...; hf: max_batch_size).",
    )
    device: str | None = Field(
        None, description="hf backend: torch device of the workers' models (default: model.device)."
    )
    max_restarts: int = Field(2, ge=0, description="Restarts of a rollout or env worker that died.")
    max_task_retries: int = Field(2, ge=0, description="Re-runs of an episode whose worker died.")
    worker_setup: str | None = Field(
        None,
        description="`package.module:function` each worker calls first (registers envs from outside palaestra).",
    )


def build_hf_policy(
    model_config: Any,
    state: dict[str, torch.Tensor],
    tokenizer: PreTrainedTokenizerBase,
    *,
    generation_config: Any = None,
    device: str = "cpu",
    max_batch_size: int = 64,
    sampler: str = "auto",
    name: str = "hf",
) -> HFPolicy:
    """Build a worker's `HFPolicy` from a shipped model (architecture config + weights + tokenizer)."""
    from transformers import AutoModelForCausalLM

    from palaestra.agents.hf import HFPolicy

    dtype = next(iter(state.values())).dtype
    model = AutoModelForCausalLM.from_config(model_config, torch_dtype=dtype)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if k not in _tied_keys(model)]:
        raise RuntimeError(
            f"shipped weights do not fit the model: missing {missing}, unexpected {unexpected}"
        )
    if generation_config is not None:
        model.generation_config = generation_config
    model.to(device).eval()
    return HFPolicy(model, tokenizer, name=name, max_batch_size=max_batch_size, sampler=sampler)  # type: ignore[arg-type]


def _tied_keys(model: torch.nn.Module) -> set[str]:
    """Parameter names that share storage with an earlier one (a tied LM head)."""
    seen: dict[int, str] = {}
    tied = set()
    for key, tensor in model.state_dict(keep_vars=True).items():
        if tensor.data_ptr() in seen:
            tied.add(key)
        seen.setdefault(tensor.data_ptr(), key)
    return tied


class RayRollouts:
    """A rollout source whose episodes run on Ray rollout workers (see the module docstring).

    Args:
        config: the run's configuration (`rollout.ray` set).
        local: the trainer's own hf policy (evaluation, algorithm-specific generation).
        export: saves the current policy as an HF folder (the vllm workers' initial weights).

    Raises:
        ImportError: ray is not installed.
    """

    def __init__(self, config: TrainConfig, local: HFPolicy, export: Callable[[Path], Path]):
        from palaestra.rollout.ray_workers import RayRollout

        ray_cfg = config.rollout.ray
        assert ray_cfg is not None
        _init_ray(ray_cfg)
        self.policy: Policy = local
        self.version = 0
        self.lora = config.model.lora is not None
        self.backend = config.agent.backend
        if config.agent.sleep_mode:
            warnings.warn(
                "agent.sleep_mode has no effect with rollout.ray: the workers' engines keep their memory",
                stacklevel=2,
            )
        spec: str | Callable[..., Policy]
        if self.backend == "vllm":
            spec = f"vllm:{export(config.run.run_dir / 'vllm-init')}"
            options = {**vllm_options(config), "sleep_mode": False, **ray_cfg.policy_options}
        else:
            model = merged_model(local.model, lora=self.lora)
            options = {
                "model_config": model.config,
                "state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "tokenizer": local.tokenizer,
                "generation_config": getattr(model, "generation_config", None),
                "device": ray_cfg.device or config.model.device,
                "max_batch_size": config.agent.max_batch_size,
                "sampler": config.agent.sampler,
                "name": local.name,
                **ray_cfg.policy_options,
            }
            spec = build_hf_policy
        r = config.rollout
        self.remote = RayRollout(
            spec,
            policy_options=options,
            config=RolloutConfig(max_concurrency=max(1, r.tasks_per_step * r.group_size)),
            num_workers=ray_cfg.num_workers,
            num_env_workers=ray_cfg.num_env_workers,
            worker_options=ray_cfg.worker_options,
            env_worker_options=ray_cfg.env_worker_options,
            max_restarts=ray_cfg.max_restarts,
            max_task_retries=ray_cfg.max_task_retries,
            worker_setup=ray_cfg.worker_setup,
        )

    async def run(self, tasks: Sequence[Task], config: RolloutConfig) -> list[Trajectory]:
        return await self.remote.run_async(tasks, config)

    async def run_jobs(self, jobs: Sequence[WorkerJob]) -> list[Any]:
        """Episodes of other rollout kinds (`rollout/remote_jobs.py`) on the workers, in the order of `jobs`."""
        return await self.remote.run_jobs_async(jobs)

    def sync_weights(self, model: torch.nn.Module, *, version: int | None = None) -> None:
        """Send the weights to every worker; returns once all of them load them (between two of their
        generate calls: episodes in flight go on with the new weights)."""
        sync_policy(self.policy, None, version)  # shares the trainer's model
        full = self.backend == "vllm"  # a vLLM reload takes whole layers; hf loads any subset
        self.remote.sync_weights(trained_weights(model, lora=self.lora, full=full), version=version)
        self.version = self.version if version is None else version

    def release_memory(self) -> None:
        """Remote engines keep their memory (they do not share the trainer's GPU)."""

    def close(self) -> None:
        self.remote.close()


def reject_ray(config: TrainConfig, options: Sequence[str]) -> None:
    """Raise if `rollout.ray` is set with algorithm options whose models live only in the trainer's process.

    Args:
        config: the run's configuration.
        options: the offending options that are set, as `key=value` (none: nothing to reject).

    Raises:
        ValueError: `rollout.ray` is set and `options` is not empty.
    """
    if config.rollout.ray is not None and options:
        raise ValueError(
            f"rollout.ray is not supported with {', '.join(options)}: it lives in the trainer's process; "
            "remove rollout.ray or choose another option"
        )


def _init_ray(cfg: RayConfig) -> None:
    """Connect to (or start) the cluster `cfg` names, unless Ray is already initialised."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError("rollout.ray needs ray: pip install 'palaestra[ray]'") from exc
    if ray.is_initialized():
        return
    if cfg.address == "local":
        ray.init(num_cpus=cfg.num_cpus, include_dashboard=False)
    else:
        if cfg.num_cpus is not None:
            raise ValueError(
                f"rollout.ray.num_cpus={cfg.num_cpus} applies only to a local cluster "
                f"(rollout.ray.address=local), not address={cfg.address!r}; remove it"
            )
        ray.init(address=cfg.address)
    logger.info("Ray: %s", ray.cluster_resources())
