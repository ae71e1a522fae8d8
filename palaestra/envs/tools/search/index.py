"""The BM25 index of a corpus (`bm25s`): built once per corpus, cached on disk and in memory.

The cache key is a hash of the documents and the index settings, so a changed generator or corpus
never reads a stale index. On disk an index is a folder under `palaestra.io.cache_root()/search/`:
bm25s's files plus a manifest of their SHA-256 hashes, written last; the folder is written under a
temporary name and renamed into place, so readers see a whole index or none. A folder whose files
do not match their manifest (a damaged cache) is removed and rebuilt, with a warning. Within a
process every env of the same corpus shares one index object.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
from bm25s.stopwords import STOPWORDS_EN

from palaestra.envs.tools.search.documents import Corpus, Document
from palaestra.io import atomic_write_json, cache_root

__all__ = [
    "INDEX_VERSION",
    "Hit",
    "SearchIndex",
    "build_retriever",
    "corpus_key",
    "forget_indexes",
    "load_index",
    "tokenize",
]

INDEX_VERSION = 1
"""Bumped when tokenisation or the BM25 settings change (part of the cache key)."""
_BM25 = {"k1": 1.2, "b": 0.75, "method": "lucene"}
_STOPWORDS = frozenset(STOPWORDS_EN)
_WORD = re.compile(r"[a-z0-9]+")
_SENTENCE_END = re.compile(r"(?<=\.)\s+")
_SNIPPET_CHARS = 200
_MANIFEST = "manifest.json"
_MEMORY: dict[str, SearchIndex] = {}


def tokenize(text: str) -> list[str]:
    """Lower-case words and numbers, English stop words left out (documents and queries alike)."""
    return [w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS]


@dataclass(frozen=True)
class Hit:
    """One search result: the document, its BM25 score and its sentence that best matches the query."""

    doc_id: str
    title: str
    snippet: str
    score: float


class SearchIndex:
    """BM25 over a corpus's documents (title and text).

    Attributes:
        corpus: the indexed corpus.
        key: the cache key (a hash of the documents and the index settings).
        origin: "built" (indexed in this process) or "disk" (read from the cache).
    """

    def __init__(self, corpus: Corpus, retriever: bm25s.BM25, key: str, origin: str):
        self.corpus, self.retriever, self.key, self.origin = corpus, retriever, key, origin

    def search(self, query: str, k: int) -> list[Hit]:
        """The `k` best documents for `query`, best first (ties in document order); none for a query
        with no indexed word."""
        tokens = [t for t in tokenize(query) if t in self.retriever.vocab_dict]
        if not tokens:
            return []
        scores = np.asarray(self.retriever.get_scores(tokens))  # (num_docs,)
        order = np.lexsort((np.arange(len(scores)), -scores))[:k]
        wanted = set(tokens)
        return [
            Hit(doc.doc_id, doc.title, _snippet(doc, wanted), float(scores[i]))
            for i in order
            if scores[i] > 0
            for doc in (self.corpus.documents[int(i)],)
        ]


def _snippet(doc: Document, words: set[str]) -> str:
    sentences = _SENTENCE_END.split(doc.text)
    best = max(sentences, key=lambda s: len(words & set(tokenize(s))))  # max keeps the first of ties
    return best if len(best) <= _SNIPPET_CHARS else best[: _SNIPPET_CHARS - 3] + "..."


def corpus_key(corpus: Corpus) -> str:
    """A hash of the corpus's documents and the index settings."""
    digest = hashlib.sha256(json.dumps([INDEX_VERSION, _BM25, bm25s.__version__]).encode())
    for doc in corpus.documents:
        digest.update(json.dumps([doc.doc_id, doc.title, doc.text]).encode())
    return digest.hexdigest()[:32]


def build_retriever(corpus: Corpus) -> bm25s.BM25:
    """A BM25 index of the documents' titles and texts (no cache)."""
    retriever = bm25s.BM25(**_BM25)
    retriever.index([tokenize(f"{doc.title} {doc.text}") for doc in corpus.documents], show_progress=False)
    return retriever


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(folder: Path) -> bm25s.BM25 | None:
    """The index cached in `folder`; None if there is none. A damaged one is removed, with a warning."""
    manifest = folder / _MANIFEST
    if not manifest.exists():
        return None
    try:
        hashes = json.loads(manifest.read_text())
        bad = [name for name, sha in hashes.items() if _sha256(folder / name) != sha]
        if bad:
            raise ValueError(f"{', '.join(sorted(bad))} do(es) not match the manifest")
        return bm25s.BM25.load(str(folder), show_progress=False)
    except Exception as exc:
        warnings.warn(f"search index cache {folder} is damaged ({exc}); rebuilding it", stacklevel=3)
        shutil.rmtree(folder, ignore_errors=True)
        return None


def _write(folder: Path, retriever: bm25s.BM25) -> None:
    """Save the index as `folder`, atomically: under a temporary name, the manifest last, then renamed."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        retriever.save(str(tmp), show_progress=False)
        atomic_write_json(tmp / _MANIFEST, {p.name: _sha256(p) for p in sorted(tmp.iterdir())})
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
        tmp.rename(folder)  # fails if another process got there first: its index is as good
    except OSError as exc:
        if not folder.exists():
            warnings.warn(f"could not cache the search index in {folder} ({exc})", stacklevel=3)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_index(corpus: Corpus, cache_dir: Path | None = None) -> SearchIndex:
    """The BM25 index of `corpus`: from this process's memory, else the disk cache, else built (and cached).

    Args:
        corpus: the documents.
        cache_dir: where indexes are cached (default: `cache_root() / "search"`).
    """
    key = corpus_key(corpus)
    if key in _MEMORY:
        return _MEMORY[key]
    folder = (cache_dir or cache_root() / "search") / key
    retriever = _read(folder)
    origin = "disk"
    if retriever is None:
        retriever, origin = build_retriever(corpus), "built"
        _write(folder, retriever)
    index = _MEMORY[key] = SearchIndex(corpus, retriever, key, origin)
    return index


def forget_indexes() -> None:
    """Drop the indexes this process holds in memory (the disk cache stays)."""
    _MEMORY.clear()
