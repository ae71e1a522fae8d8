"""SPA-RL stepwise progress attribution: per-step rewards from a learned progress estimator (docs/algorithms.md §8).

Paper: Wang, Leong, Wang, Wang, Li, "SPA-RL: Reinforcing LLM Agents via Stepwise Progress Attribution"
(arXiv 2505.20732); reference code WangHanLinHenry/SPA-RL-Agent (`prm/train_our_progress_model.py`).

The estimator reads the LM's output logits at the last token of each assistant turn through a linear
layer `Linear(vocab_size, 1)` and predicts that step's contribution ĉ_t; it is trained so the
contributions add up to the episode's outcome:

    L(φ) = mean_τ ( Σ_t ĉ_t − R(τ) )²                                        (MSE, code)
    r_t  = α · ĉ_t + β · g_t,     g_t = 1 if step t's action was valid (no format error) else 0

The step rewards r_t replace the env's step rewards in GiGPO's step returns (`GiGPOConfig.step_rewards
= "progress"`), so credit goes to the steps the estimator sees as progress.

Two estimators (`GiGPOConfig.progress_estimator`):
    * `model` (the paper's): a separate LM P_φ (from `progress_model`, or a copy of the policy's initial
      weights, as the paper initialises it from the SFT model) with the progress head, LM and head
      trained together by the MSE above with their own AdamW (`ProgressModel`), checkpointed next to
      the policy (RUN/progress/checkpoints, same steps) so resume restores weights and optimizer.
    * `head` (light): only the linear head, on the *current policy's* detached logits (`HeadProgress`).

Departures (§8.4 ambiguities; our choices): both estimators are fitted online, one fit per RL step on
that step's episodes, *after* predicting them (so a step's targets never leak into its own rewards),
instead of once on an exploration set before RL (the paper's pipeline: pre-fit the `model` estimator
on explored episodes, then keep it frozen with a tiny learning rate). The estimator LM must share the
policy's tokenizer (it reads the trajectories' token ids). α = β = 1 by default (not recoverable from
the paper); the code's "remaining steps" multiplier and its bypass of the estimator are not copied.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from palaestra.rollout.trajectory import Trajectory
from palaestra.trainers.core.checkpoint import load_checkpoint, save_checkpoint
from palaestra.trainers.core.optim import build_scheduler

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "HeadProgress",
    "ProgressEstimator",
    "ProgressModel",
    "StepProgress",
    "progress_step_rewards",
    "turn_ends",
]


class StepProgress(Protocol):
    """A progress estimator over whole trajectories: per-step contributions, and a fit to returns."""

    def predict(self, trajectories: Sequence[Trajectory]) -> list[list[float]]: ...

    def fit(self, trajectories: Sequence[Trajectory], returns: Sequence[float]) -> float: ...


def turn_ends(trajectory: Trajectory) -> list[int] | None:
    """Position of the last token of each reply in `token_ids`, or None for a text-only trajectory."""
    ends = [end - 1 for _, end in (u.token_span for u in trajectory.turns)]
    return ends if trajectory.token_ids and ends and min(ends) >= 0 else None


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


class HeadProgress:
    """`ProgressEstimator` on the policy's own turn-end logits (`logits(trajectory)` -> (T, V))."""

    def __init__(self, head: ProgressEstimator, logits: Callable[[Trajectory], torch.Tensor]):
        self.head, self.logits = head, logits

    def predict(self, trajectories: Sequence[Trajectory]) -> list[list[float]]:
        self._cache = [self.logits(t) for t in trajectories]
        with torch.no_grad():
            return [self.head(x).tolist() for x in self._cache]

    def fit(self, trajectories: Sequence[Trajectory], returns: Sequence[float]) -> float:
        cached = getattr(self, "_cache", [])
        logits = cached if len(cached) == len(trajectories) else [self.logits(t) for t in trajectories]
        self._cache = []
        return self.head.fit(logits, returns)


class ProgressModel(torch.nn.Module):
    """The paper's estimator: a separate LM with `Linear(vocab_size, 1)` on its turn-end logits.

    ĉ_t = head(LM(τ).logits[last token of reply t]); LM and head are trained together by
    mean_τ (Σ_t ĉ_t − R(τ))², one episode per forward pass (gradients accumulated over the episodes).

    Args:
        lm: the estimator's causal LM (its own copy; it is trained).
        lr: AdamW learning rate (LM and head).
        fit_iters: optimizer steps per `fit` call, each over all the episodes given.
        max_grad_norm: gradient clipping (None: none).
        autocast: a context manager factory for the forward passes (e.g. bf16 autocast).
    """

    def __init__(
        self,
        lm: PreTrainedModel,
        *,
        lr: float = 1e-5,
        fit_iters: int = 1,
        max_grad_norm: float | None = 1.0,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    ):
        super().__init__()
        self.lm = lm
        vocab = int(lm.get_output_embeddings().weight.shape[0])
        device = next(lm.parameters()).device
        self.head = torch.nn.Linear(vocab, 1, device=device)
        torch.nn.init.zeros_(self.head.weight)
        torch.nn.init.zeros_(self.head.bias)
        self.fit_iters, self.max_grad_norm, self.autocast = fit_iters, max_grad_norm, autocast
        self.optimizer = torch.optim.AdamW(self.parameters(), lr=lr, weight_decay=0.0)
        self.scheduler = build_scheduler(self.optimizer, schedule="constant", warmup_steps=0, total_steps=1)

    @property
    def vocab_size(self) -> int:
        return self.head.in_features

    def contributions(self, trajectory: Trajectory) -> torch.Tensor:
        """(T,) ĉ of each reply (with gradients when enabled); zeros for a text-only trajectory."""
        ends = turn_ends(trajectory)
        if ends is None:
            return torch.zeros(trajectory.num_turns, device=self.head.weight.device)
        device = self.head.weight.device
        ids = torch.tensor([trajectory.token_ids], device=device)
        with self.autocast():
            logits = self.lm(input_ids=ids, logits_to_keep=torch.tensor(ends, device=device)).logits[0]
        return self.head(logits.float()).squeeze(-1)  # (T,)

    @contextlib.contextmanager
    def _mode(self, training: bool) -> Iterator[None]:
        was = self.training
        self.train(training)
        try:
            yield
        finally:
            self.train(was)

    @torch.no_grad()
    def predict(self, trajectories: Sequence[Trajectory]) -> list[list[float]]:
        with self._mode(False):
            return [self.contributions(t).tolist() for t in trajectories]

    @torch.no_grad()
    def mse(self, trajectories: Sequence[Trajectory], returns: Sequence[float]) -> float:
        """mean_τ (Σ_t ĉ_t − R(τ))² under the current weights."""
        with self._mode(False):
            errors = [
                (float(self.contributions(t).sum()) - float(r)) ** 2
                for t, r in zip(trajectories, returns, strict=True)
            ]
        return sum(errors) / max(len(errors), 1)

    def fit(self, trajectories: Sequence[Trajectory], returns: Sequence[float]) -> float:
        """`fit_iters` AdamW steps on the episodes' MSE; returns the MSE of the last pass (before its step)."""
        if len(trajectories) != len(returns):
            raise ValueError(f"{len(trajectories)} trajectories but {len(returns)} returns")
        usable = [(t, float(r)) for t, r in zip(trajectories, returns, strict=True) if turn_ends(t)]
        if not usable:
            return float("nan")
        loss_sum = float("nan")
        with self._mode(True):
            for _ in range(self.fit_iters):
                loss_sum = 0.0
                for t, r in usable:
                    loss = (self.contributions(t).sum() - r).square() / len(usable)
                    loss.backward()
                    loss_sum += float(loss.detach())
                if self.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(self.parameters(), self.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
        return loss_sum

    def save(self, directory: Path, step: int, *, keep: int = 2) -> Path:
        """Atomic checkpoint of LM, head and optimizer as `directory/step-NNNNNN` (the core's format)."""
        return save_checkpoint(
            directory,
            step,
            model=self,
            optimizer=self.optimizer,
            scheduler=self.scheduler,
            state={},
            keep=keep,
        )

    def load(self, folder: Path) -> None:
        """Restore what `save` wrote (weights, optimizer; RNG states as saved)."""
        load_checkpoint(folder, model=self, optimizer=self.optimizer, scheduler=self.scheduler)
