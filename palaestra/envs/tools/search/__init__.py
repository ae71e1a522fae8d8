"""`palaestra/Tool-Search-v0`: multi-hop questions over a generated corpus, with BM25 search and open tools.

Importing this package only registers the ids (lazy entry points: bm25s is imported when an env is made).

    palaestra/Tool-Search-v0        two-hop questions (level=2)
    palaestra/Tool-Search-v0-easy   one-hop questions (level=1)
    palaestra/Tool-Search-v0-hard   three-hop questions and two-entity comparisons (level=3)

Every id takes `world=` (the seed of the generated world, default 0) and `level=`.
"""

from __future__ import annotations

from palaestra.envs.registration import register_env

_ENTRY_POINT = "palaestra.envs.tools.search.env:SearchEnv"
_MAX_TURNS = {1: 6, 2: 10, 3: 14}  # env.MAX_TURNS (not imported here: it would import bm25s)

for _suffix, _level, _what in (
    ("", 2, "two-hop questions"),
    ("-easy", 1, "one-hop questions"),
    ("-hard", 3, "three-hop questions and comparisons"),
):
    register_env(
        f"palaestra/Tool-Search-v0{_suffix}",
        _ENTRY_POINT,
        description=f"Search a generated corpus (BM25 search + open tools) to answer {_what} exactly",
        family="Tool",
        max_turns=_MAX_TURNS[_level],
        reward_range=(0.0, 1.0),
        kwargs={"level": _level},
    )
