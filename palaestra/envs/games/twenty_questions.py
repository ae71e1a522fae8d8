"""Twenty Questions: find the secret thing by asking yes/no questions, then name it.

The knowledge base (`data/entities.json`) holds 100+ entities (mammals, other animals, foods and
drinks, vehicles, household objects, tools/instruments/clothing), each with a yes/no value for every
one of 70 attributes (is_animal, can_fly, has_wheels, bigger_than_a_car, ...). Each attribute lists
the question phrasings the oracle knows and a few keywords.

Action format (the content of the last `[...]` in the reply, see `parsing.last_bracketed`):
    `[Does it fly?]`: a yes/no question; the answer is "yes", "no" or "invalid".
    `[guess: penguin]`: a guess ("guess" then ":" or a space, then the name). A question of the form
        `[Is it a penguin?]`, where the rest names a known entity, is a guess too.
Every reply (question, guess or unreadable) uses one of the `max_questions` (20) turns. A correct guess
(any alias, singular or plural, articles ignored) ends the game in success; a wrong one does not end it.

How the oracle reads a question (`parse_question`):
    1. Normalise: lowercase, accents stripped, apostrophes and periods removed, other punctuation to
       spaces; a leading "is this" / "is the thing" / "does your object" ... becomes "is it" / "does
       it"; the articles a/an/the and a trailing "please" are dropped.
    2. If it equals a normalised phrasing of an attribute, that attribute answers.
    3. Otherwise the keyword rule: the question must start with an auxiliary (is, does, can, has, ...),
       hold no negation ("not", "isn't", ...) and no "or", and its keywords (whole words) must name
       exactly one attribute; a keyword inside a longer matched keyword is ignored ("eat meat" beats
       "eat"). A category noun (animal, mammal, bird, fish, food, fruit, vehicle, tool, ...) counts only
       as the whole of an "is it ..." question ("Is it a (kind of) fish?"), so neither "Does it eat
       fish?" nor "Is it a wild animal?" is read as a category question.
    Anything else is "invalid" (it still counts as a question).

Difficulty sets the candidate pool: "easy" one category (~17 entities, listed in the prompt),
"medium" three categories (listed), "hard" every entity (only the categories are named).

Rewards: 1.0 for a correct guess, else 0. With `shaped=True`, each answered question or wrong guess
earns `0.1 * removed / (pool - 1)`, where `removed` counts the pool entities it rules out, and a correct
guess earns the rest of 1.0, so a solved episode returns exactly 1.0 and an unsolved one at most 0.1.

Info keys besides the standard ones: `expert_action` (the question that best splits the candidates
still consistent with the answers, using the attribute's first phrasing, or the guess once one is
left), `questions_left`, `candidates_left`, and after a question `answer`.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from palaestra.envs.core import StepOutcome, TextEnv
from palaestra.envs.games.parsing import MOVE_FORMAT, last_bracketed

__all__ = [
    "DIFFICULTIES",
    "Attribute",
    "Entity",
    "KnowledgeBase",
    "TwentyQuestionsEnv",
    "load_knowledge_base",
    "normalise",
]

DIFFICULTIES: tuple[str, ...] = ("easy", "medium", "hard")
SHAPED_BUDGET = 0.1
"""Most a shaped, unsolved episode can earn."""

_AUXILIARIES = frozenset(["is", "does", "do", "can", "could", "would", "will", "has", "have", "are", "was"])
_NEGATIONS = frozenset(
    ["not", "no", "never", "isnt", "doesnt", "dont", "cant", "cannot", "arent", "wasnt", "wont", "hasnt"]
)
_ARTICLES = frozenset(("a", "an", "the"))
_SUBJECTS = (("this",), ("that",), ("the", "thing"), ("your", "thing"), ("the", "object"), ("your", "object"))
_GUESS_RE = re.compile(r"^guess\b\s*[:\-]?\s*(.*)$", re.IGNORECASE | re.DOTALL)


def normalise(text: str) -> list[str]:
    """Lowercase word tokens: accents stripped, apostrophes and periods dropped, other punctuation split."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = re.sub(r"['\u2019.]", "", text)
    return re.sub(r"[^a-z0-9]+", " ", text).split()


def _canonical(text: str) -> tuple[str, ...]:
    """`normalise`, then the subject becomes "it" and articles and a trailing "please" go."""
    words = normalise(text)
    if len(words) > 1 and words[0] in _AUXILIARIES:
        for subject in _SUBJECTS:
            if tuple(words[1 : 1 + len(subject)]) == subject:
                words = [words[0], "it", *words[1 + len(subject) :]]
                break
    words = [w for w in words if w not in _ARTICLES]
    if words and words[-1] == "please":
        words.pop()
    return tuple(words)


def _predicate(words: tuple[str, ...]) -> tuple[str, ...] | None:
    """What follows "is it" (less "kind of", "type of", ...), or None when the question is not "is it ..."."""
    if words[:2] != ("is", "it"):
        return None
    rest = words[2:]
    if rest[1:2] == ("of",) and rest[:1] in (("kind",), ("type",), ("sort",), ("form",)):
        rest = rest[2:]
    return rest


def _name_forms(name: str) -> set[str]:
    base = " ".join(_canonical(name))
    forms = {base, base + "s", base + "es"}
    if base.endswith("y"):
        forms.add(base[:-1] + "ies")
    return forms


@dataclass(frozen=True)
class Attribute:
    """A yes/no property with the questions the oracle knows for it.

    Attributes:
        key: e.g. "can_fly".
        questions: natural-language phrasings; the first is the one the expert asks.
        keywords: words that name the attribute in other phrasings.
        needs_is_it: the keywords only count in "is it ..." questions (category nouns).
    """

    key: str
    questions: tuple[str, ...]
    keywords: tuple[str, ...]
    needs_is_it: bool


@dataclass(frozen=True)
class Entity:
    """A thing the oracle may have in mind.

    Attributes:
        name: canonical name, e.g. "fire truck".
        category: one of the knowledge base's category keys.
        aliases: other accepted names.
        attributes: attribute key -> value, for every attribute.
    """

    name: str
    category: str
    aliases: tuple[str, ...]
    attributes: Mapping[str, bool] = field(repr=False)

    @functools.cached_property
    def forms(self) -> frozenset[str]:
        """Every accepted normalised spelling (name, aliases, simple plurals)."""
        return frozenset(f for n in (self.name, *self.aliases) for f in _name_forms(n))


@dataclass(frozen=True)
class KnowledgeBase:
    """Attributes, categories (key -> description) and entities of the game."""

    attributes: Mapping[str, Attribute]
    categories: Mapping[str, str]
    entities: tuple[Entity, ...]

    @functools.cached_property
    def _phrasings(self) -> dict[tuple[str, ...], str]:
        return {_canonical(q): a.key for a in self.attributes.values() for q in a.questions}

    @functools.cached_property
    def _keywords(self) -> list[tuple[tuple[str, ...], Attribute]]:
        return [(_canonical(k), a) for a in self.attributes.values() for k in a.keywords]

    def entity(self, name: str) -> Entity | None:
        """The entity `name` refers to (any alias or simple plural, articles ignored), or None."""
        words = _canonical(name)
        if words[:2] == ("it", "is"):
            words = words[2:]
        elif words[:1] == ("its",):  # "it's"
            words = words[1:]
        wanted = " ".join(words)
        for entity in self.entities:
            if wanted in entity.forms:
                return entity
        return None

    def parse_question(self, question: str) -> str | None:
        """The attribute key a yes/no question asks about, or None (see the module docstring)."""
        words = _canonical(question)
        if words in self._phrasings:
            return self._phrasings[words]
        if not words or words[0] not in _AUXILIARIES or "or" in words or _NEGATIONS & set(words):
            return None
        predicate = _predicate(words)
        spans: list[tuple[int, int, Attribute]] = []
        for keyword, attribute in self._keywords:
            if attribute.needs_is_it:  # a category noun must be the whole predicate of "is it ..."
                if predicate == keyword:
                    spans.append((0, len(words), attribute))
                continue
            n = len(keyword)
            spans += [(i, i + n, attribute) for i in range(len(words) - n + 1) if words[i : i + n] == keyword]
        kept = {
            a.key
            for s, e, a in spans
            if not any(s2 <= s and e <= e2 and (e2 - s2) > (e - s) for s2, e2, _ in spans)
        }
        return kept.pop() if len(kept) == 1 else None

    def answer(self, question: str, entity: Entity) -> str:
        """The oracle's reply to `question` about `entity`: "yes", "no" or "invalid"."""
        key = self.parse_question(question)
        if key is None:
            return "invalid"
        return "yes" if entity.attributes[key] else "no"


@functools.cache
def load_knowledge_base() -> KnowledgeBase:
    """The bundled knowledge base (`palaestra/envs/games/data/entities.json`), loaded once."""
    raw = json.loads(resources.files("palaestra.envs.games").joinpath("data/entities.json").read_text())
    attributes = {
        key: Attribute(key, tuple(a["questions"]), tuple(a["keywords"]), bool(a["needs_is_it"]))
        for key, a in raw["attributes"].items()
    }
    entities = tuple(
        Entity(e["name"], e["category"], tuple(e["aliases"]), dict(e["attributes"])) for e in raw["entities"]
    )
    return KnowledgeBase(attributes, dict(raw["categories"]), entities)


def _split_score(candidates: list[Entity], key: str) -> int:
    yes = sum(e.attributes[key] for e in candidates)
    return min(yes, len(candidates) - yes)


class TwentyQuestionsEnv(TextEnv):
    """Twenty Questions against a scripted oracle (see the module docstring).

    Args:
        difficulty: "easy" (one category), "medium" (three categories) or "hard" (everything).
        max_questions: replies allowed (questions, guesses and unreadable replies alike).
        shaped: add small rewards for ruling candidates out (the return stays in [0, 1]).
        render_mode: None or "ansi".

    Reset options: `secret` (an entity name) picks the secret thing instead of the seed.
    """

    def __init__(
        self,
        *,
        difficulty: str = "medium",
        max_questions: int = 20,
        shaped: bool = False,
        render_mode: str | None = None,
    ):
        if difficulty not in DIFFICULTIES:
            raise ValueError(f"difficulty={difficulty!r}; choose one of {DIFFICULTIES}")
        super().__init__(max_turns=max_questions, render_mode=render_mode)
        self.difficulty, self.max_questions, self.shaped = difficulty, max_questions, bool(shaped)
        self.kb = load_knowledge_base()
        self.system_prompt = (
            "Let's play Twenty Questions. I am thinking of a thing; find out what it is. Ask yes/no "
            'questions such as [Does it fly?] or [Is it bigger than a car?]; I answer "yes", "no" or '
            '"invalid" (a question I cannot answer with yes or no; it still counts). Ask about one '
            "property at a time, without negations or 'or'. When you know, guess with [guess: NAME], "
            "e.g. [guess: penguin]; a wrong guess does not end the game. You have "
            f"{max_questions} turns in all: every question, guess or unreadable reply uses one. "
            + MOVE_FORMAT.format(example="Does it have wheels?")
        )
        self.secret: Entity = self.kb.entities[0]
        self.pool: list[Entity] = []
        self.candidates: list[Entity] = []
        self._earned = 0.0

    # -- episode set-up ----------------------------------------------------------------------------
    def _draw_pool(self, secret: Entity | None) -> tuple[list[str], Entity]:
        categories = list(self.kb.categories)
        if self.difficulty == "hard":
            chosen = categories
        else:
            first = secret.category if secret else categories[int(self.np_random.integers(len(categories)))]
            others = [c for c in categories if c != first]
            extra = [] if self.difficulty == "easy" else list(self.np_random.choice(others, 2, replace=False))
            chosen = [c for c in categories if c == first or c in extra]
        self.pool = [e for e in self.kb.entities if e.category in chosen]
        if secret is None:
            secret = self.pool[int(self.np_random.integers(len(self.pool)))]
        return chosen, secret

    def _reset(self, options: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        options = dict(options or {})
        wanted = options.pop("secret", None)
        if options:
            raise ValueError(f"unknown reset options {sorted(options)}; TwentyQuestionsEnv accepts 'secret'")
        secret = None
        if wanted is not None:
            secret = self.kb.entity(str(wanted))
            if secret is None:
                raise ValueError(f"secret={wanted!r} is not in the knowledge base")
        chosen, self.secret = self._draw_pool(secret)
        self.candidates, self._earned = list(self.pool), 0.0
        kinds = "; ".join(self.kb.categories[c] for c in chosen)
        if self.difficulty == "hard":
            text = f"I am thinking of something: it may be {kinds} ({len(self.pool)} things in all)."
        else:
            names = ", ".join(e.name for e in self.pool)
            text = f"I am thinking of something: it is {kinds}. It is one of: {names}."
        text += f" You have {self.max_questions} questions. Ask your first question."
        task_id = f"twenty_questions/{self.difficulty}/{'+'.join(chosen)}/{self.secret.name}"
        return text, {"task_id": task_id, **self._info()}

    # -- the expert --------------------------------------------------------------------------------
    def expert_action(self) -> str:
        """The best-splitting question's first phrasing, or the guess when one candidate is left."""
        if len(self.candidates) > 1:
            best = max(self.kb.attributes, key=lambda k: _split_score(self.candidates, k))
            if _split_score(self.candidates, best) > 0:
                return f"[{self.kb.attributes[best].questions[0]}]"
        return f"[guess: {self.candidates[0].name}]"

    def _info(self) -> dict[str, Any]:
        return {
            "expert_action": self.expert_action(),
            "questions_left": self.max_questions - self.turn,
            "candidates_left": len(self.candidates),
        }

    # -- a turn ------------------------------------------------------------------------------------
    def _rule_out(self, keep: list[Entity]) -> float:
        removed = len(self.candidates) - len(keep)
        self.candidates = keep
        if not self.shaped or len(self.pool) < 2:
            return 0.0
        reward = SHAPED_BUDGET * removed / (len(self.pool) - 1)
        self._earned += reward
        return reward

    def _step(self, action: str) -> StepOutcome:
        move = last_bracketed(action)
        left = self.max_questions - self.turn - 1  # TextEnv counts this reply after `_step`
        info: dict[str, Any] = {"role": "user"}
        if move is None:
            error = "no question or guess in square brackets found"
            text = "I could not find a question or guess in square brackets. Ask e.g. [Does it fly?] or guess with [guess: penguin]."
            return self._reply(text, 0.0, left, info, format_error=error)
        guess = _GUESS_RE.match(move)
        words = _canonical(move)
        named = None
        if words[:2] == ("is", "it") and len(words) > 2 and self.kb.parse_question(move) is None:
            named = self.kb.entity(" ".join(words[2:]))
        if guess is not None or named is not None:
            name = guess.group(1).strip() if guess is not None else " ".join(words[2:])
            if not name:
                error = "a guess with no name"
                return self._reply(
                    "Guess with a name, e.g. [guess: penguin].", 0.0, left, info, format_error=error
                )
            entity = self.kb.entity(name)
            if entity is self.secret:
                info.update(guess=entity.name)
                reward = 1.0 - self._earned
                self._earned = 1.0
                return StepOutcome(
                    f"Yes! You found it: {self.secret.name}.",
                    reward=reward,
                    terminated=True,
                    success=True,
                    info={**info, **self._info(), "questions_left": left},
                )
            reward = self._rule_out([e for e in self.candidates if e is not entity])
            return self._reply(f'No, it is not "{name}".', reward, left, info)
        answer = self.kb.answer(move, self.secret)
        info["answer"] = answer
        reward = 0.0
        if answer != "invalid":
            key = self.kb.parse_question(move)
            assert key is not None
            value = self.secret.attributes[key]
            reward = self._rule_out([e for e in self.candidates if e.attributes[key] == value])
        text = (
            answer.capitalize() + "."
            if answer != "invalid"
            else "Invalid: I cannot answer that with yes or no."
        )
        return self._reply(text, reward, left, info)

    def _reply(
        self, text: str, reward: float, left: int, info: dict[str, Any], *, format_error: str | None = None
    ) -> StepOutcome:
        done = left <= 0
        if done:
            text += f" No questions left; the answer was: {self.secret.name}."
        else:
            text += f" ({left} question{'s' if left != 1 else ''} left.)"
        info = {**info, **self._info(), "questions_left": left}
        return StepOutcome(text, reward=reward, terminated=done, format_error=format_error, info=info)
