"""Model names and agent specs are checked without loading anything: one line for each bad name."""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from palaestra.agents.models import check_model_name
from palaestra.agents.spec import check_spec


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty HF cache in tmp_path; `cache(repo)` puts a model's config.json in it, as a download would."""
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    def cache(repo: str) -> None:
        folder = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
        (folder / "refs").mkdir(parents=True)
        (folder / "refs" / "main").write_text("abc123")
        (folder / "snapshots" / "abc123").mkdir(parents=True)
        (folder / "snapshots" / "abc123" / "config.json").write_text("{}")

    return cache


@pytest.mark.parametrize("name", ["smollm2-135m", "tiny-random"])
def test_aliases_pass(name):
    check_model_name(name)


def test_an_unknown_name_lists_the_aliases(hub_cache):
    with pytest.raises(ValueError) as info:
        check_model_name("nosuchalias")
    message = str(info.value)
    assert message == (
        "unknown model 'nosuchalias': not an alias (smollm2-135m, tiny-random), a local folder or a cached hub id"
    )


def test_hub_ids_pass_when_cached_or_when_the_hub_can_be_reached(hub_cache, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ValueError, match=r"unknown model 'org/model'.*HF_HUB_OFFLINE"):
        check_model_name("org/model")
    hub_cache("org/model")
    check_model_name("org/model")
    hub_cache("gpt2")  # a root-level hub id counts once cached
    check_model_name("gpt2")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    check_model_name("org/other")  # downloaded on load


def test_local_paths_must_hold_a_model(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        check_model_name(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no config\.json"):
        check_model_name(str(tmp_path / "empty"))
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match=r"not a \.gguf file"):
        check_model_name(str(tmp_path / "notes.txt"))
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    check_model_name(str(tmp_path / "hf"))
    (tmp_path / "two").mkdir()
    for name in ("a.gguf", "b.gguf"):
        (tmp_path / "two" / name).write_bytes(b"")
    with pytest.raises(ValueError, match=r"several \.gguf files"):
        check_model_name(str(tmp_path / "two"))


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("hf:nosuchalias", {}, "not an alias"),
        ("hf:tiny-random", {"dtype": "float8"}, "dtype='float8'"),
        ("hf:tiny-random", {"temperature": 1}, "does not take"),
        ("openai:gpt", {}, "needs base_url"),
        ("openai:gpt", {"base_url": "http://x/v1", "tokenizer": "nosuchalias"}, "not an alias"),
        ("scripted:genius", {}, "unknown scripted agent"),
        ("magic:model", {}, "unknown agent backend"),
    ],
)
def test_check_spec_names_the_problem(spec, options, message, hub_cache):
    with pytest.raises(ValueError, match=message):
        check_spec(spec, **options)


def test_check_spec_fills_in_the_defaults():
    assert check_spec("scripted:random", seed=3) == {"seed": 3}
    assert check_spec("hf:tiny-random")["dtype"] == "float32"
