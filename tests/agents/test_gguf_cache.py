"""GGUF files are converted once and read from the cache after: the cache's bookkeeping with a stand-in
converter (fast), then the embedded SmolLM2 through `load_model` in two processes at once (slow)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from palaestra.agents import gguf_cache
from palaestra.agents.gguf_cache import CACHE_ENV, cache_root, converted_gguf

REPO = Path(__file__).parents[2]


@pytest.fixture
def conversions(tmp_path, monkeypatch):
    """A private cache and a stand-in converter (two small files, a pause); returns the list of its calls."""
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    calls: list[Path] = []

    def convert(gguf: Path, out: Path) -> None:
        calls.append(gguf)
        time.sleep(0.2)  # long enough for a second thread to arrive while this one converts
        (out / "config.json").write_text('{"model_type": "llama"}')
        (out / "model.safetensors").write_bytes(gguf.read_bytes() * 10)

    monkeypatch.setattr(gguf_cache, "_convert", convert)
    return calls


@pytest.fixture
def gguf(tmp_path) -> Path:
    path = tmp_path / "models" / "m.gguf"
    path.parent.mkdir()
    path.write_bytes(b"GGUF v1")
    return path


def test_a_file_is_converted_once_then_read_from_the_cache(conversions, gguf, tmp_path, capfd):
    first = converted_gguf(gguf)
    assert "converting m.gguf to safetensors, once" in capfd.readouterr().err
    assert first.parent == tmp_path / "cache" / "gguf" and first.name.startswith("m-")
    assert (first / "model.safetensors").read_bytes() == b"GGUF v1" * 10
    assert converted_gguf(gguf) == first
    assert conversions == [gguf]
    assert capfd.readouterr().err == ""  # the second load converts nothing and says nothing
    assert not [p for p in first.parent.iterdir() if p.name.startswith(".tmp-")]


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "mine"))
    assert cache_root() == tmp_path / "mine"
    monkeypatch.delenv(CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert cache_root() == tmp_path / "xdg" / "palaestra"


def test_a_changed_file_is_converted_again(conversions, gguf):
    first = converted_gguf(gguf)
    gguf.write_bytes(b"GGUF v2, longer")
    second = converted_gguf(gguf)
    assert second != first and conversions == [gguf, gguf]
    assert (second / "model.safetensors").read_bytes() == b"GGUF v2, longer" * 10
    assert not first.exists()  # the old version's ~0.5 GB is not kept


def test_the_same_file_elsewhere_shares_the_folder(conversions, gguf, tmp_path):
    """Another virtual environment installs the same model file at another path: no second conversion."""
    first = converted_gguf(gguf)
    copy = tmp_path / "other-venv" / "m.gguf"
    copy.parent.mkdir()
    copy.write_bytes(gguf.read_bytes())
    assert converted_gguf(copy) == first and conversions == [gguf]


def test_a_model_with_a_longer_name_is_not_an_old_version(conversions, gguf):
    """Pruning old versions of `m` leaves `m-instruct` alone (names are compared whole)."""
    other = gguf.with_name("m-instruct.gguf")
    other.write_bytes(b"another model")
    kept = converted_gguf(other)
    converted_gguf(gguf)
    assert kept.exists() and len(conversions) == 2


@pytest.mark.parametrize("damage", ["truncate", "remove", "manifest"])
def test_a_damaged_folder_is_converted_again(conversions, gguf, damage):
    folder = converted_gguf(gguf)
    if damage == "truncate":  # e.g. a full disk
        (folder / "model.safetensors").write_bytes(b"GG")
    elif damage == "remove":
        (folder / "config.json").unlink()
    else:
        (folder / "palaestra-gguf.json").write_text("{not json")
    assert converted_gguf(gguf) == folder
    assert len(conversions) == 2
    assert (folder / "model.safetensors").read_bytes() == b"GGUF v1" * 10


def test_a_failed_conversion_leaves_nothing_behind(conversions, gguf, monkeypatch):
    def fail(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise RuntimeError("disk full")

    with monkeypatch.context() as patch:
        patch.setattr(gguf_cache, "_convert", fail)
        with pytest.raises(RuntimeError, match="disk full"):
            converted_gguf(gguf)
    root = cache_root() / "gguf"
    assert sorted(p.name for p in root.iterdir() if not p.name.endswith(".lock")) == []
    folder = converted_gguf(gguf)  # the next load converts
    assert (folder / "config.json").exists() and conversions == [gguf]


def test_concurrent_first_loads_convert_once(conversions, gguf):
    results: list[Path] = []
    threads = [threading.Thread(target=lambda: results.append(converted_gguf(gguf))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and len(set(results)) == 1
    assert conversions == [gguf]


def test_an_unwritable_cache_converts_to_a_temporary_folder_with_a_warning(
    conversions, gguf, tmp_path, monkeypatch
):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker))  # a file where the folder should be
    with pytest.warns(UserWarning, match=f"cannot write the model cache.*set {CACHE_ENV}"):
        folder = converted_gguf(gguf)
    assert (folder / "model.safetensors").exists() and not str(folder).startswith(str(blocker))


@pytest.mark.slow
def test_the_embedded_model_converts_once_across_processes(tmp_path, monkeypatch, capfd):
    """Two processes load SmolLM2 at once into an empty cache: one converts (and shows its progress),
    the other waits and reads the result; a third load converts nothing, and the weights are the
    GGUF's own de-quantized tensors."""
    from gguf import GGUFReader, dequantize

    from palaestra.agents.models import chat_prompt_ids, embedded_gguf, load_model

    env = {**os.environ, CACHE_ENV: str(tmp_path), "PYTHONPATH": str(REPO)}
    code = "from palaestra.agents.models import load_model_and_tokenizer as f; f('smollm2-135m')"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errs
    assert sum("converting SmolLM2-135M-Instruct.Q4_1.gguf" in e for e in errs) == 1, errs
    assert sum("Converting and de-quantizing" in e for e in errs) == 1, errs
    assert not any("Warning" in e for e in errs), errs

    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    capfd.readouterr()
    model = load_model("smollm2-135m")
    assert capfd.readouterr().err == ""  # no conversion, no progress bar
    tensors = {t.name: t for t in GGUFReader(embedded_gguf()).tensors}
    for gguf_name, weight in [
        ("token_embd.weight", model.get_input_embeddings().weight),
        ("blk.0.ffn_down.weight", model.model.layers[0].mlp.down_proj.weight),
    ]:
        t = tensors[gguf_name]
        expected = torch.from_numpy(dequantize(t.data, t.tensor_type).reshape(weight.shape))
        torch.testing.assert_close(weight.detach(), expected, atol=0, rtol=0, msg=gguf_name)

    from transformers import AutoTokenizer

    folder = converted_gguf(embedded_gguf())
    cached = AutoTokenizer.from_pretrained(str(folder))
    direct = AutoTokenizer.from_pretrained(str(embedded_gguf().parent), gguf_file=embedded_gguf().name)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 3 + 4?"}]
    assert chat_prompt_ids(cached, messages) == chat_prompt_ids(direct, messages)
    assert (cached.eos_token, cached.bos_token, len(cached)) == (
        direct.eos_token,
        direct.bos_token,
        len(direct),
    )
