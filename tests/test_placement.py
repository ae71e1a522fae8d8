"""Placement plans for colocated and split layouts, the dry run, and a reservation on a local Ray."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from palaestra.cli import app
from palaestra.config import ConfigError, load_config
from palaestra.placement import PlacementConfig, plan, reserve

CONFIGS = Path(__file__).parents[1] / "configs" / "scale"
runner = CliRunner()


def _every_gpu_once(layout) -> None:
    c = layout.config
    assert Counter((s.node, s.gpu) for s in layout.slots) == Counter(
        (n, g) for n in range(c.nodes) for g in range(c.gpus_per_node)
    )
    bundles = sum(len(g.bundles) for g in layout.groups)
    assert bundles == c.nodes * c.gpus_per_node


def test_one_node_of_eight_colocated():
    layout = plan(load_config(CONFIGS / "1x8-colocated.yaml").placement)
    _every_gpu_once(layout)
    assert layout.trainer_world_size == 8 and layout.engines == 8 and layout.gpu_share == 0.5
    [group] = layout.groups
    assert group.strategy == "STRICT_PACK" and group.bundles[0] == {"GPU": 1.0, "CPU": 8.0}
    assert group.members[3] == [("trainer", 3), ("rollout", 3)]  # rank 3 and its engine share GPU 3
    assert "GPU-local" in layout.weight_sync


def test_four_nodes_of_eight_split():
    layout = plan(load_config(CONFIGS / "4x8-split.yaml").placement)
    _every_gpu_once(layout)
    assert layout.trainer_world_size == 16 and layout.engines == 8 and layout.gpu_share == 1.0
    assert {s.node for s in layout.slots if s.trainer_rank is not None} == {0, 1}
    assert [s.trainer_rank for s in layout.slots if s.trainer_rank is not None] == list(range(16))
    for engine in range(8):  # tensor-parallel workers of an engine share a node
        nodes = {s.node for s in layout.slots if s.engine == engine}
        assert len(nodes) == 1 and nodes <= {2, 3}
    names = [g.name for g in layout.groups]
    assert names[:2] == ["trainer-node0", "trainer-node1"] and len(names) == 10
    assert all(g.strategy == "STRICT_PACK" for g in layout.groups)
    assert "16 engine worker(s)" in layout.weight_sync


def test_a_node_shared_by_trainer_and_engines():
    layout = plan(PlacementConfig(mode="split", nodes=2, gpus_per_node=8, trainer_gpus=12, engine_gpus=4))
    _every_gpu_once(layout)
    node1 = [s for s in layout.slots if s.node == 1]
    assert [s.trainer_rank for s in node1[:4]] == [8, 9, 10, 11]
    assert {s.engine for s in node1[4:]} == {0} and layout.engines == 1


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"engine_gpus": 3}, "does not divide gpus_per_node=8"),
        ({"trainer_gpus": 4}, "mode=colocated"),
        ({"mode": "split"}, "needs 1 <= trainer_gpus < 8"),
        ({"mode": "split", "trainer_gpus": 8}, "needs 1 <= trainer_gpus < 8"),
        ({"mode": "split", "nodes": 2, "trainer_gpus": 10, "engine_gpus": 4}, "leaves 6 GPUs"),
    ],
)
def test_layouts_that_do_not_fit_are_clear_errors(fields, message):
    with pytest.raises(ValueError, match=message):
        PlacementConfig(**fields)


def test_dry_run_prints_the_plan_and_json(tmp_path):
    result = runner.invoke(app, ["placement", str(CONFIGS / "4x8-split.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "trainer: 16 rank(s)" in result.output and "gpu 7: engine 7 (tp rank 1)" in result.output
    result = runner.invoke(
        app, ["placement", str(CONFIGS / "1x8-colocated.yaml"), "placement.nodes=2", "--dry-run", "--json"]
    )
    data = json.loads(result.output)
    assert data["trainer_world_size"] == 16 and len(data["placement_groups"]) == 2
    bare = tmp_path / "bare.yaml"
    bare.write_text("envs: {train: [{id: palaestra/Math-Arith-v0}]}\n")
    result = runner.invoke(app, ["placement", str(bare), "--dry-run"])
    assert result.exit_code == 2 and "no `placement` section" in result.output
    with pytest.raises(ConfigError, match=r"placement\.engine_gpus"):
        load_config(CONFIGS / "1x8-colocated.yaml", ["placement.engine_gpus=0"])


def test_reservation_on_a_local_ray_cluster():
    ray = pytest.importorskip("ray")
    # logical resources: Ray schedules against declared GPUs, so the plan's groups can be placed on CPU
    ray.init(num_cpus=4, num_gpus=8, include_dashboard=False, log_to_driver=False)
    try:
        layout = plan(PlacementConfig(nodes=1, gpus_per_node=8, cpus_per_gpu=0.5))
        reservation = reserve(layout, timeout_s=60)

        @ray.remote
        def gpu_ids():
            return ray.get_gpu_ids()

        on = ray.get([gpu_ids.options(**reservation.actor_options("rollout", i)).remote() for i in range(3)])
        assert len({tuple(ids) for ids in on}) == 3  # three bundles, three different GPUs
        with pytest.raises(ValueError, match="no trainer 8"):
            reservation.actor_options("trainer", 8)
        reservation.release()
        too_big = plan(PlacementConfig(nodes=2, gpus_per_node=8, cpus_per_gpu=0.5))
        with pytest.raises(TimeoutError, match="place 1 of 2"):
            reserve(too_big, timeout_s=2)
    finally:
        ray.shutdown()
