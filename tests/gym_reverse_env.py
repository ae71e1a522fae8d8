"""A plain gymnasium env with text spaces, registered with gymnasium only: no palaestra import.

Tests name it as `tests.gym_reverse_env:mine/Reverse-v0` (gymnasium's `module:id` form) to show that
palaestra evaluates and trains such an env with no palaestra-specific code.
"""

from __future__ import annotations

import difflib
import string

import gymnasium as gym
from gymnasium.spaces import Text

LETTERS = string.ascii_lowercase


class ReverseEnv(gym.Env):
    """Reverse a word of `length` letters in one reply; the reward is the reply's similarity to the reverse
    (so random replies differ in reward and training has a signal), success the exact reverse."""

    def __init__(self, length: int = 4, expert: bool = True):
        self.length, self.expert = length, expert
        self.observation_space = Text(max_length=200, charset=LETTERS + " :.")
        self.action_space = Text(max_length=200)
        self._word = ""

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._word = "".join(LETTERS[i] for i in self.np_random.integers(0, 26, self.length))
        info = {"task_id": self._word} | ({"expert_action": self._word[::-1]} if self.expert else {})
        return f"reverse: {self._word}", info

    def step(self, action):
        reply = action.strip() if isinstance(action, str) else ""
        reward = difflib.SequenceMatcher(None, reply, self._word[::-1]).ratio()
        return "done.", reward, True, False, {"task_id": self._word, "success": reply == self._word[::-1]}


gym.register(id="mine/Reverse-v0", entry_point=ReverseEnv, max_episode_steps=1)
