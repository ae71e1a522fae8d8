"""Where trainer ranks and rollout engines run on a GPU cluster: a placement plan and its Ray reservation.

Two layouts (`placement.mode`):

    colocated  every GPU holds one trainer rank and (a share of) one rollout engine. The engine sleeps
               (vLLM sleep mode: weights and KV cache released) while the trainer updates, and wakes
               for the next rollout; weights move GPU-locally from each trainer rank to the engine
               worker beside it. One Ray placement group per node (STRICT_PACK, one bundle per GPU);
               the trainer actor and the engine worker of a GPU share its bundle (0.5 GPU each).
    split      separate pools: the first `trainer_gpus` GPUs (filling nodes in order) train, the rest
               generate. Rollout and update can overlap; after each update trainer rank 0 gathers the
               full weights and broadcasts them to every engine worker over one NCCL group
               (rank 0 + all engine workers). Placement groups: one per trainer node (STRICT_PACK) and
               one per engine (STRICT_PACK: an engine's tensor-parallel workers share a node).

`plan(config)` is pure Python: it checks the layout fits the cluster and says which GPU of which node
does what. `palaestra placement CONFIG --dry-run` prints it without any cluster; without `--dry-run`
`reserve(plan)` creates the placement groups on a running Ray cluster (the `ray` extra), and
`Reservation.actor_options(role, index)` gives what `ray.remote(...).options(...)` needs to start a
trainer rank or an engine worker in its bundle. Ray numbers a group's bundles but picks its nodes: the
node numbers in a plan are the layout Ray produces on an empty cluster of identical nodes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["GroupSpec", "PlacementConfig", "PlacementPlan", "Reservation", "Slot", "plan", "reserve"]

Role = Literal["trainer", "rollout"]


class PlacementConfig(BaseModel):
    """The cluster and how to lay out training and rollout on it (the `placement` config section)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    mode: Literal["colocated", "split"] = Field(
        "colocated", description="colocated: trainer and engines share every GPU; split: separate pools."
    )
    nodes: int = Field(1, ge=1, description="Nodes in the cluster.")
    gpus_per_node: int = Field(8, ge=1, description="GPUs per node.")
    cpus_per_gpu: float = Field(
        4.0, gt=0, description="CPUs reserved with each GPU (env workers, tokenization, data loading)."
    )
    trainer_gpus: int | None = Field(
        None, ge=1, description="split: GPUs for training (the rest generate). colocated: leave unset."
    )
    engine_gpus: int = Field(
        1, ge=1, description="GPUs per rollout engine (vLLM tensor_parallel_size); within one node."
    )

    @model_validator(mode="after")
    def _fits(self) -> PlacementConfig:
        total = self.nodes * self.gpus_per_node
        if self.gpus_per_node % self.engine_gpus:
            raise ValueError(
                f"engine_gpus={self.engine_gpus} does not divide gpus_per_node={self.gpus_per_node}: an "
                "engine's tensor-parallel workers must share a node; pick a divisor"
            )
        if self.mode == "colocated" and self.trainer_gpus is not None:
            raise ValueError(
                f"trainer_gpus={self.trainer_gpus} with mode=colocated: colocated training uses every GPU; "
                "remove placement.trainer_gpus or set placement.mode=split"
            )
        if self.mode == "split":
            if self.trainer_gpus is None or not 1 <= self.trainer_gpus < total:
                raise ValueError(
                    f"mode=split needs 1 <= trainer_gpus < {total} (the cluster's GPUs), got "
                    f"{self.trainer_gpus}; set placement.trainer_gpus"
                )
            for node, free in enumerate(_rollout_gpus_per_node(self)):
                if free % self.engine_gpus:
                    raise ValueError(
                        f"trainer_gpus={self.trainer_gpus} leaves {free} GPUs for rollout on node {node}, "
                        f"not a multiple of engine_gpus={self.engine_gpus}; change either"
                    )
        return self


def _rollout_gpus_per_node(config: PlacementConfig) -> list[int]:
    """Split mode: rollout GPUs left on each node once trainer GPUs fill nodes in order."""
    left = config.trainer_gpus or 0
    out = []
    for _ in range(config.nodes):
        used = min(left, config.gpus_per_node)
        left -= used
        out.append(config.gpus_per_node - used)
    return out


@dataclass(frozen=True)
class Slot:
    """One GPU and what runs on it (`trainer_rank` / `engine` None when that role is absent)."""

    node: int
    gpu: int
    trainer_rank: int | None
    engine: int | None
    engine_rank: int | None  # tensor-parallel rank within the engine

    @property
    def label(self) -> str:
        parts = []
        if self.trainer_rank is not None:
            parts.append(f"trainer rank {self.trainer_rank}")
        if self.engine is not None:
            parts.append(f"engine {self.engine} (tp rank {self.engine_rank})")
        return " + ".join(parts)


@dataclass(frozen=True)
class GroupSpec:
    """A Ray placement group to create: its name, bundles and strategy, and who uses each bundle.

    `members[i]` lists (role, index) pairs placed in bundle i: a trainer rank or an engine worker
    (engine e's worker of tensor-parallel rank k has index e * engine_gpus + k).
    """

    name: str
    bundles: list[dict[str, float]]
    strategy: Literal["STRICT_PACK", "PACK", "SPREAD", "STRICT_SPREAD"]
    node: int  # expected node
    members: list[list[tuple[Role, int]]]


@dataclass(frozen=True)
class PlacementPlan:
    """The layout of one run (see the module docstring)."""

    config: PlacementConfig
    slots: list[Slot]
    groups: list[GroupSpec]
    gpu_share: float  # GPU fraction each actor asks for inside its bundle
    weight_sync: str
    notes: list[str] = field(default_factory=list)

    @property
    def trainer_world_size(self) -> int:
        return sum(s.trainer_rank is not None for s in self.slots)

    @property
    def engines(self) -> int:
        return len({s.engine for s in self.slots if s.engine is not None})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serializable form (the `--json` output of the dry run)."""
        return {
            "mode": self.config.mode,
            "nodes": self.config.nodes,
            "gpus_per_node": self.config.gpus_per_node,
            "trainer_world_size": self.trainer_world_size,
            "engines": self.engines,
            "engine_gpus": self.config.engine_gpus,
            "gpu_share": self.gpu_share,
            "weight_sync": self.weight_sync,
            "slots": [asdict(s) for s in self.slots],
            "placement_groups": [asdict(g) for g in self.groups],
            "notes": self.notes,
        }

    def describe(self) -> str:
        """The plan as text: totals, then node by node, GPU by GPU, then the placement groups."""
        c = self.config
        lines = [
            f"placement plan: {c.mode}, {c.nodes} node(s) x {c.gpus_per_node} GPU(s)",
            f"  trainer: {self.trainer_world_size} rank(s) (torch.distributed world size)",
            f"  rollout: {self.engines} engine(s) x {c.engine_gpus} GPU(s) (tensor parallel)",
            f"  weight sync: {self.weight_sync}",
        ]
        for node in range(c.nodes):
            lines.append(f"  node {node}:")
            for s in (s for s in self.slots if s.node == node):
                lines.append(f"    gpu {s.gpu}: {s.label}")
        lines.append(f"  Ray placement groups ({len(self.groups)}; each actor asks {self.gpu_share:g} GPU):")
        for g in self.groups:
            bundle = json.dumps(g.bundles[0], sort_keys=True) if g.bundles else "{}"
            lines.append(f"    {g.name}: {len(g.bundles)} x {bundle} {g.strategy} (node {g.node})")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _bundle(config: PlacementConfig) -> dict[str, float]:
    return {"GPU": 1.0, "CPU": float(config.cpus_per_gpu)}


def plan(config: PlacementConfig) -> PlacementPlan:
    """Lay out trainer ranks and rollout engines on the cluster `config` describes."""
    if config.mode == "colocated":
        return _colocated(config)
    return _split(config)


def _colocated(c: PlacementConfig) -> PlacementPlan:
    slots, groups = [], []
    for node in range(c.nodes):
        members: list[list[tuple[Role, int]]] = []
        for gpu in range(c.gpus_per_node):
            rank = node * c.gpus_per_node + gpu
            slots.append(Slot(node, gpu, rank, rank // c.engine_gpus, rank % c.engine_gpus))
            members.append([("trainer", rank), ("rollout", rank)])
        groups.append(GroupSpec(f"node{node}", [_bundle(c)] * c.gpus_per_node, "STRICT_PACK", node, members))
    return PlacementPlan(
        c,
        slots,
        groups,
        gpu_share=0.5,
        weight_sync="GPU-local: each trainer rank hands its weights to the engine worker on its GPU",
        notes=[
            "the engines sleep during updates (vLLM sleep mode) so the trainer has the GPU memory",
            "rollout and update alternate: no overlap, no cross-GPU weight traffic",
        ],
    )


def _split(c: PlacementConfig) -> PlacementPlan:
    assert c.trainer_gpus is not None  # checked by PlacementConfig
    slots, groups = [], []
    rank = engine = 0
    free = _rollout_gpus_per_node(c)
    for node in range(c.nodes):
        trainer_here = c.gpus_per_node - free[node]
        members: list[list[tuple[Role, int]]] = []
        for gpu in range(trainer_here):
            slots.append(Slot(node, gpu, rank, None, None))
            members.append([("trainer", rank)])
            rank += 1
        if members:
            groups.append(
                GroupSpec(f"trainer-node{node}", [_bundle(c)] * trainer_here, "STRICT_PACK", node, members)
            )
        for first in range(trainer_here, c.gpus_per_node, c.engine_gpus):
            workers: list[tuple[Role, int]] = [
                ("rollout", engine * c.engine_gpus + k) for k in range(c.engine_gpus)
            ]
            for k in range(c.engine_gpus):
                slots.append(Slot(node, first + k, None, engine, k))
            groups.append(
                GroupSpec(
                    f"engine{engine}",
                    [_bundle(c)] * c.engine_gpus,
                    "STRICT_PACK",
                    node,
                    [[w] for w in workers],
                )
            )
            engine += 1
    rollout_gpus = sum(free)
    return PlacementPlan(
        c,
        slots,
        groups,
        gpu_share=1.0,
        weight_sync=f"NCCL broadcast from trainer rank 0 to {rollout_gpus} engine worker(s) "
        f"(group of {rollout_gpus + 1})",
        notes=[
            f"{c.trainer_gpus} GPU(s) only train and {rollout_gpus} only generate: no sleep/wake, but "
            "the weights cross the network after every update",
        ],
    )


class Reservation:
    """Placement groups created on a Ray cluster for a plan; `release()` removes them."""

    def __init__(self, plan: PlacementPlan, groups: dict[str, Any]):
        self.plan = plan
        self.groups = groups

    def actor_options(self, role: Role, index: int) -> dict[str, Any]:
        """`ray.remote(...).options(**this)` for trainer rank `index` or engine worker `index`."""
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        for spec in self.plan.groups:
            for bundle, members in enumerate(spec.members):
                if (role, index) in members:
                    strategy = PlacementGroupSchedulingStrategy(
                        placement_group=self.groups[spec.name], placement_group_bundle_index=bundle
                    )
                    return {"num_gpus": self.plan.gpu_share, "num_cpus": 0, "scheduling_strategy": strategy}
        raise ValueError(
            f"the plan has no {role} {index}; it has {self.plan.trainer_world_size} trainer rank(s)"
        )

    def release(self) -> None:
        from ray.util import remove_placement_group

        for group in self.groups.values():
            remove_placement_group(group)
        self.groups = {}


def reserve(plan: PlacementPlan, *, timeout_s: float = 600.0) -> Reservation:
    """Create the plan's placement groups on the connected Ray cluster and wait until all are placed.

    Raises:
        ImportError: Ray is not installed (`pip install 'palaestra[ray]'`).
        TimeoutError: the cluster cannot host the plan within `timeout_s` (the groups are removed).
    """
    try:
        import ray
        from ray.util import placement_group
    except ImportError:
        raise ImportError("reserving a placement needs Ray: pip install 'palaestra[ray]'") from None
    groups = {g.name: placement_group(g.bundles, strategy=g.strategy, name=g.name) for g in plan.groups}
    reservation = Reservation(plan, groups)
    ready, _ = ray.wait([g.ready() for g in groups.values()], num_returns=len(groups), timeout=timeout_s)
    if len(ready) < len(groups):
        reservation.release()
        raise TimeoutError(
            f"Ray could place {len(ready)} of {len(groups)} placement groups in {timeout_s:g} s: the cluster "
            f"lacks the resources of the plan ({plan.config.nodes} x {plan.config.gpus_per_node} GPUs, "
            f"{plan.config.cpus_per_gpu:g} CPUs per GPU); check `ray status`"
        )
    return reservation
