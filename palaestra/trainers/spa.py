"""SPA-RL stepwise progress attribution: per-step rewards from a learned progress estimator (ALGORITHMS.md §8).

Paper: Wang, Leong, Wang, Wang, Li, "SPA-RL: Reinforcing LLM Agents via Stepwise Progress Attribution"
(arXiv 2505.20732); reference code WangHanLinHenry/SPA-RL-Agent (`prm/train_our_progress_model.py`).

The estimator reads the LM's output logits at the last token of each assistant turn through a linear
layer `Linear(vocab_size, 1)` and predicts that step's contribution ĉ_t; it is trained so the
contributions add up to the episode's outcome:

    L(φ) = mean_τ ( Σ_t ĉ_t − R(τ) )²                                        (MSE, code)
    r_t  = α · ĉ_t + β · g_t,     g_t = 1 if step t's action was valid (no format error) else 0

The step rewards r_t replace the env's step rewards in GiGPO's step returns (`GiGPOConfig.step_rewards
= "progress"`), so credit goes to the steps the estimator sees as progress.

Departures (§8.4 ambiguities; our choices): the paper trains a whole LM copy (from the SFT model) as
estimator before RL; here only the linear head is trained, online, on the *current policy's* detached
logits, one fit per RL step on that step's episodes, *after* predicting them (so a step's targets never
leak into its own rewards). α = β = 1 by default (not recoverable from the paper); the code's
"remaining steps" multiplier and its bypass of the estimator are not copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["ProgressEstimator", "progress_step_rewards"]


class ProgressEstimator(torch.nn.Module):
    """`Linear(vocab_size, 1)` on turn-end logits, fitted by MSE of summed contributions to R(τ).

    Args:
        vocab_size: the LM's vocabulary size (the logits' last dimension).
        lr: Adam learning rate of the head.
        fit_iters: Adam steps per `fit` call.
    """

    def __init__(self, vocab_size: int, *, lr: float = 1e-3, fit_iters: int = 20):
        super().__init__()
        self.head = torch.nn.Linear(vocab_size, 1)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.fit_iters = fit_iters
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=lr)

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        """(S, V) turn-end logits -> (S,) contributions ĉ."""
        return self.head(logits.float()).squeeze(-1)

    def fit(self, episodes: Sequence[torch.Tensor], returns: Sequence[float]) -> float:
        """Fit on episodes (each a (T_i, V) tensor of turn-end logits) and their returns; the final MSE."""
        if not episodes:
            return float("nan")
        target = torch.tensor([float(r) for r in returns])
        owner = torch.cat([torch.full((len(e),), i) for i, e in enumerate(episodes)])
        flat = torch.cat([e.float() for e in episodes])  # (S, V)
        loss = torch.tensor(float("nan"))
        for _ in range(self.fit_iters):
            sums = torch.zeros(len(episodes)).index_add(0, owner, self(flat))  # (N,)
            loss = (sums - target).square().mean()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        return float(loss.detach())

    def state(self) -> dict[str, Any]:
        """JSON-serializable weights and optimizer state."""
        opt = self.optimizer.state_dict()
        tensors = {k: v.tolist() for k, v in self.head.state_dict().items()}
        moments = {
            str(k): {n: (t.tolist() if isinstance(t, torch.Tensor) else t) for n, t in s.items()}
            for k, s in opt["state"].items()
        }
        return {"head": tensors, "adam": moments}

    def load(self, state: dict[str, Any]) -> None:
        self.head.load_state_dict({k: torch.tensor(v) for k, v in state["head"].items()})
        opt = self.optimizer.state_dict()
        opt["state"] = {int(k): {n: torch.tensor(t) for n, t in s.items()} for k, s in state["adam"].items()}
        self.optimizer.load_state_dict(opt)


def progress_step_rewards(
    contributions: Sequence[float], valid: Sequence[bool], *, alpha: float = 1.0, beta: float = 1.0
) -> list[float]:
    """r_t = α ĉ_t + β g_t for one episode (g_t = 1 for a valid action)."""
    if len(contributions) != len(valid):
        raise ValueError(f"{len(contributions)} contributions but {len(valid)} validity flags")
    return [alpha * float(c) + beta * float(v) for c, v in zip(contributions, valid, strict=True)]
