"""GGUF files converted once: de-quantized to a safetensors model folder (with the tokenizer) kept on disk.

transformers reads a GGUF file by de-quantizing every tensor, several seconds for SmolLM2-135M on
every load. `converted_gguf` does that on a file's first load only and keeps the result under
`cache_root()/gguf/`, in a folder named after the file and keyed by its content (sha256, ~0.1 s for
SmolLM2): the same file installed in several virtual environments shares one folder, and a changed
file gets a new folder that replaces the old one (each converted model takes ~0.5 GB, so old
versions are not kept). Later loads read the folder as an ordinary HF model, in well under a second.

The folder is written under a temporary name and renamed when complete, while a file lock keeps a
second process (a pytest-xdist worker, a second run) from converting at the same time: it waits and
then reads the finished folder. A folder whose files do not match its manifest (a disk filled up, a
file removed by hand) is converted again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

from palaestra.agents.transformers_api import progress_bars_off
from palaestra.io import CACHE_ENV, cache_root

__all__ = ["CACHE_ENV", "cache_root", "converted_gguf"]

_MANIFEST = "palaestra-gguf.json"


def _source_record(gguf: Path) -> dict[str, str | int]:
    digest = hashlib.sha256()
    with gguf.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return {"source": str(gguf), "size": gguf.stat().st_size, "sha256": digest.hexdigest()}


def _folder_for(gguf: Path, record: dict[str, str | int]) -> Path:
    return cache_root() / "gguf" / f"{gguf.stem}-{str(record['sha256'])[:16]}"


def _remove_other_versions(folder: Path) -> None:
    """Remove the cached conversions of other versions of `folder`'s file (same name, other content),
    skipping any that another process holds locked."""
    from filelock import FileLock, Timeout

    stem = folder.name.rsplit("-", 1)[0]
    for other in folder.parent.glob(f"{stem}-*"):
        if other == folder or not other.is_dir() or other.name.rsplit("-", 1)[0] != stem:
            continue
        lock_path = other.with_name(other.name + ".lock")
        try:
            with FileLock(str(lock_path), timeout=0):
                shutil.rmtree(other, ignore_errors=True)
            lock_path.unlink(missing_ok=True)
        except (Timeout, OSError):
            continue


def _is_complete(folder: Path) -> bool:
    """Whether `folder` holds every file its manifest lists, at the listed size."""
    try:
        files = json.loads((folder / _MANIFEST).read_text())["files"]
        return all((folder / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _convert(gguf: Path, out: Path) -> None:
    """De-quantize `gguf` into the empty folder `out`: an HF model folder (float32 weights, config, tokenizer)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers' own "Converting and de-quantizing" bar stays: this is the slow part, done once
    with progress_bars_off():
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are de-quantized on load, but transformers keeps a GGUF quantizer on the model that
        # makes `save_pretrained` refuse; the weights are ordinary tensors, so drop the marker.
        model.hf_quantizer = None  # type: ignore[assignment]  # torch types Module attributes Tensor | Module
        model.is_quantized = False  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)


def _convert_with_manifest(gguf: Path, out: Path, record: dict[str, str | int]) -> None:
    """`_convert`, then the manifest (the source and every file's size), written last."""
    _convert(gguf, out)
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    (out / _MANIFEST).write_text(json.dumps({**record, "files": files}, indent=1))


def converted_gguf(gguf: Path) -> Path:
    """The HF model folder converted from the GGUF file `gguf`, converting it on its first use.

    When the cache folder cannot be written, the conversion goes to a temporary folder (removed at
    exit) with a warning: every load then converts again.
    """
    gguf = gguf.expanduser().resolve()
    record = _source_record(gguf)
    folder = _folder_for(gguf, record)
    if _is_complete(folder):
        return folder
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        lock_path = folder.with_name(folder.name + ".lock")
        lock_path.touch()
    except OSError as exc:
        warnings.warn(
            f"cannot write the model cache {folder.parent} ({exc}); {gguf.name} is converted on every load: "
            f"set {CACHE_ENV} to a writable folder",
            stacklevel=3,
        )
        return _convert_to_temporary(gguf, record)
    from filelock import FileLock

    with FileLock(str(lock_path)):
        if _is_complete(folder):  # another process converted it while this one waited
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # stale or incomplete
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
        print(f"converting {gguf.name} to safetensors, once: later loads read {folder}", file=sys.stderr)
        try:
            _convert_with_manifest(gguf, tmp, record)
            os.replace(tmp, folder)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    _remove_other_versions(folder)
    return folder


def _convert_to_temporary(gguf: Path, record: dict[str, str | int]) -> Path:
    import atexit

    out = Path(tempfile.mkdtemp(prefix="palaestra-gguf-"))
    atexit.register(shutil.rmtree, out, ignore_errors=True)
    print(f"converting {gguf.name} to safetensors in {out}", file=sys.stderr)
    _convert_with_manifest(gguf, out, record)
    return out
