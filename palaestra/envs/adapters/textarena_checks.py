"""Why a TextArena game cannot run here, found by reading TextArena's sources (no import of TextArena).

Importing textarena takes seconds and some of its games fail on import or on reset in ways only the
user can fix, outside Python. `unavailable_reason` finds them from the game's entry module and the
`textarena.envs` modules it imports (parsed once per process, about a millisecond each):

    * the registry names a module the package does not contain (a TextArena packaging bug);
    * a module does not compile on this Python (TextArena 0.7.4 uses f-strings of Python >= 3.12);
    * a module imports, at its top level, a package that is not installed (e.g. `gym`);
    * a data file or folder the game reads from its own package is missing (a packaging bug);
    * NLTK data the game loads (`nltk.download("words")`, `from nltk.corpus import words`) is not
      installed: TextArena downloads it on first use, which fails offline;
    * the game calls LLMs through OpenRouter (a judge, a game master) and OPENROUTER_API_KEY is unset.

The reason is one line that ends with the fix. The checks read only what the game's code says; the
failures they miss that TextArena raises when a game is built (NLTK's LookupError, a missing data
file, a SyntaxError) still become clear errors (`translated_errors`).
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib.metadata
import importlib.util
import os
import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from palaestra.envs.registration import EnvUnavailableError

__all__ = [
    "API_KEY_VARIABLE",
    "MissingNLTKDataError",
    "TextArenaUnavailableError",
    "nltk_data_paths",
    "textarena_root",
    "textarena_version",
    "translated_errors",
    "unavailable_reason",
]

API_KEY_VARIABLE = "OPENROUTER_API_KEY"
"""The variable TextArena's OpenRouter agents and juries read their API key from."""
_NLTK_RESOURCE_RES = (
    re.compile(r"nltk\.download\(\s*['\"]([^'\"]+)['\"]"),
    re.compile(r"Resource\s+(?:\x1b\[\d+m)?'?([\w./-]+?)'?(?:\x1b\[0m)?\s+not found"),
)
_NLTK_CATEGORIES = ("corpora", "taggers", "tokenizers", "chunkers", "grammars", "misc", "models", "stemmers")


class TextArenaUnavailableError(EnvUnavailableError):
    """A TextArena game cannot run in this environment; the message says why and how to fix it."""


class MissingNLTKDataError(TextArenaUnavailableError):
    """A TextArena game needs NLTK data that is not installed (TextArena downloads it on first use).

    Attributes:
        resource: the NLTK resource, e.g. "words".
    """

    def __init__(self, message: str, resource: str):
        super().__init__(message)
        self.resource = resource


@dataclass(frozen=True)
class _Facts:
    """What one module's source says about what it needs."""

    syntax_error: str | None = None  # "<file> does not compile on Python X (line N: <message>)"
    fstring_error: bool = False
    packages: tuple[str, ...] = ()  # top-level modules its top-level imports need (not textarena)
    internal: tuple[str, ...] = ()  # textarena.envs modules it imports
    nltk: tuple[str, ...] = ()  # NLTK resources it loads
    openrouter: bool = False
    data: tuple[str, ...] = ()  # files/folders it reads, relative to textarena's package folder


def textarena_root() -> Path | None:
    """The installed textarena package folder (found without importing it), or None."""
    spec = importlib.util.find_spec("textarena")
    return None if spec is None or spec.origin is None else Path(spec.origin).parent


@functools.cache
def textarena_version() -> str:
    try:
        return importlib.metadata.version("textarena")
    except importlib.metadata.PackageNotFoundError:
        return "(unknown version)"


def _module_file(root: Path, module: str) -> Path | None:
    """The source file of `textarena.x.y` under `root` (the textarena folder), if it exists."""
    base = root.parent.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _is_dirname_of_file(node: ast.AST) -> bool:
    """`os.path.dirname(__file__)` (or `dirname(__file__)`)."""
    return (
        isinstance(node, ast.Call)
        and getattr(node.func, "attr", getattr(node.func, "id", None)) == "dirname"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Name)
        and node.args[0].id == "__file__"
    )


def _constants(nodes: list[ast.expr]) -> list[str]:
    """The leading string constants of `nodes`."""
    out = []
    for node in nodes:
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            break
        out.append(node.value)
    return out


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of `body`, nested ones included (a tenth of the nodes `ast.walk` visits)."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from _statements(getattr(node, field, None) or [])


def _data_paths(nodes: list[ast.AST], folder: str) -> list[str]:
    """Paths the module reads from its own package: `os.path.join(<its folder>, "a", "b")` and
    `importlib.resources.files("textarena.x").joinpath("f")`, relative to textarena's parent folder."""
    own_dir = {"os.path.dirname(__file__)"}
    own_dir.update(
        ast.unparse(target)
        for node in nodes
        if isinstance(node, ast.Assign) and _is_dirname_of_file(node.value)
        for target in node.targets
    )
    paths = []
    for node in nodes:
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
            continue
        if node.func.attr == "join" and ast.unparse(node.args[0]) in own_dir:
            if parts := _constants(node.args[1:]):
                paths.append("/".join([folder, *parts]))
        elif node.func.attr == "joinpath" and isinstance(node.func.value, ast.Call):
            inner = node.func.value
            package, parts = _constants(inner.args), _constants(node.args)
            if getattr(inner.func, "attr", None) == "files" and package and parts:
                paths.append("/".join([*package[0].split("."), *parts]))
    return paths


def _imports(tree: ast.Module, module: str) -> tuple[list[str], list[str]]:
    """(top-level packages of the module-level imports, textarena.envs modules imported anywhere)."""
    packages, internal = [], []
    package = module.rsplit(".", 1)[0]
    top_level = {id(node) for node in tree.body}
    for node in _statements(tree.body):
        if isinstance(node, ast.Import):
            names = roots = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative to the module's package
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            roots = [] if node.level else [base]
        else:
            continue
        internal += [name for name in names if name.startswith("textarena.envs.")]
        if id(node) in top_level:
            packages += [r.split(".")[0] for r in roots if r.split(".")[0] != "textarena"]
    return packages, internal


def _nltk_resources(nodes: list[ast.AST]) -> list[str]:
    found = []
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module == "nltk.corpus":
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.Call) and ast.unparse(node.func) == "nltk.download":
            for arg in node.args[:1]:
                items = arg.elts if isinstance(arg, ast.List | ast.Tuple) else [arg]
                found += [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]
    return found


def _uses_openrouter(nodes: list[ast.AST]) -> bool:
    """The module names one of TextArena's OpenRouter classes (`OpenRouterAgent`, `OpenRouterJury`)."""
    return any(
        "OpenRouter" in name
        for node in nodes
        for name in (
            [alias.name for alias in node.names]
            if isinstance(node, ast.ImportFrom)
            else [getattr(node, "id", None) or getattr(node, "attr", None) or ""]
        )
    )


@functools.cache
def _facts(root: Path, path: Path, module: str) -> _Facts:
    """What the module at `path` needs; the full syntax tree is only walked for the few modules whose
    text mentions NLTK, OpenRouter or their own files."""
    source = path.read_text(encoding="utf-8")
    try:
        with warnings.catch_warnings():  # e.g. invalid escape sequences: Python's business when imported
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        python = ".".join(map(str, sys.version_info[:3]))
        where = path.relative_to(root.parent).as_posix()
        error = f"{where} does not compile on Python {python} (line {exc.lineno}: {exc.msg})"
        return _Facts(syntax_error=error, fstring_error="f-string" in str(exc.msg))
    packages, internal = _imports(tree, module)
    keywords = ("nltk", "OpenRouter", "__file__", "joinpath")
    nodes = list(ast.walk(tree)) if any(k in source for k in keywords) else []
    return _Facts(
        packages=tuple(dict.fromkeys(packages)),
        internal=tuple(dict.fromkeys(internal)),
        nltk=tuple(dict.fromkeys(_nltk_resources(nodes))),
        openrouter=_uses_openrouter(nodes),
        data=tuple(dict.fromkeys(_data_paths(nodes, "/".join(module.split(".")[:-1])))),
    )


@functools.cache
def _game_facts(root: Path, module: str) -> list[tuple[str, _Facts]] | None:
    """The facts of `module` and the textarena.envs modules it imports (transitively); None when
    `module` is not in the package."""
    if _module_file(root, module) is None:
        return None
    out, todo, seen = [], [module], {module}
    while todo:
        name = todo.pop()
        path = _module_file(root, name)
        if path is None or (path.name == "__init__.py" and name != module):
            continue  # `from package import name` of a non-module name, or a package's registry
        facts = _facts(root, path, name)
        out.append((name, facts))
        for imported in facts.internal:
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return out


def nltk_data_paths() -> list[Path]:
    """The folders NLTK searches for its data (as `nltk.data.path`, without importing nltk)."""
    paths = [Path(p) for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    paths.append(Path("~/nltk_data").expanduser())
    paths += [Path(sys.prefix) / sub for sub in ("nltk_data", "share/nltk_data", "lib/nltk_data")]
    paths += [Path(p) for p in ("/usr/share/nltk_data", "/usr/local/share/nltk_data")]
    return paths + [Path(p) for p in ("/usr/lib/nltk_data", "/usr/local/lib/nltk_data")]


def _nltk_installed(resource: str) -> bool:
    return any(
        (folder / category / name).exists()
        for folder in nltk_data_paths()
        if folder.is_dir()
        for category in _NLTK_CATEGORIES
        for name in (resource, f"{resource}.zip")
    )


def unavailable_reason(game_id: str, module: str) -> str | None:
    """Why TextArena's `game_id` (whose entry module is `module`) cannot run here, ending with the fix;
    None when nothing is known to stop it (see the module docstring)."""
    root = textarena_root()
    if root is None:
        return "it needs the textarena package: pip install 'palaestra[textarena]'"
    if not module:  # a registration without a "module:Class" entry point: nothing to read
        return None
    version = textarena_version()
    modules = _game_facts(root, module)
    if modules is None:
        return (
            f"TextArena {version} registers {game_id} with the module {module}, which its package does "
            "not contain (a TextArena packaging bug); use a TextArena release that ships it, or another game"
        )
    for _, facts in modules:
        if facts.syntax_error is not None:
            fix = (
                "it uses f-string syntax that needs Python >= 3.12 (PEP 701): use Python 3.12+ or a "
                "TextArena release that fixes it"
                if facts.fstring_error
                else "a bug in TextArena: use a TextArena release that fixes it"
            )
            return f"TextArena {version}'s {facts.syntax_error}; {fix}"
    missing = [p for _, f in modules for p in f.packages if importlib.util.find_spec(p) is None]
    if missing:
        names = " ".join(dict.fromkeys(missing))
        return f"it imports {', '.join(dict.fromkeys(missing))}, not installed here: pip install {names}"
    lacking = [p for _, f in modules for p in f.data if not (root.parent / p).exists()]
    if lacking:
        return (
            f"TextArena {version} does not ship {lacking[0]}, which the game reads (a "
            "packaging bug in TextArena): install TextArena from its source repository, or pick another game"
        )
    resources = [r for _, f in modules for r in f.nltk if not _nltk_installed(r)]
    if resources:
        names = " ".join(dict.fromkeys(resources))
        quoted = ", ".join(repr(r) for r in dict.fromkeys(resources))
        return (
            f"it needs the NLTK data {quoted}, not installed here (TextArena downloads it on first use, "
            f"which fails offline): run `python -m nltk.downloader {names}` on a machine with internet "
            "access, or point NLTK_DATA at a folder that holds it"
        )
    if any(f.openrouter for _, f in modules) and not os.environ.get(API_KEY_VARIABLE):
        return (
            f"it calls LLMs through OpenRouter (a judge or game master) and {API_KEY_VARIABLE} is not "
            f"set: export {API_KEY_VARIABLE}=<your key> (and be online)"
        )
    return None


# -- failures the checks missed, as TextArena raises them when a game is built ---------------------
def _nltk_resource(message: str) -> str | None:
    for pattern in _NLTK_RESOURCE_RES:
        if found := pattern.search(message):
            return found.group(1).rsplit("/", 1)[-1]
    return None


@contextlib.contextmanager
def translated_errors(game_id: str) -> Iterator[None]:
    """Turn TextArena's known offline and Python-version failures into clear errors."""
    try:
        yield
    except LookupError as exc:
        resource = _nltk_resource(str(exc))
        if resource is None or "nltk" not in str(exc).lower():
            raise
        raise MissingNLTKDataError(
            f"TextArena's {game_id} needs the NLTK data {resource!r}, which is not installed (TextArena "
            f"tries to download it on first use, which fails offline). Install it with "
            f"`python -m nltk.downloader {resource}` on a machine with internet access, or copy an "
            "nltk_data folder that holds it and point NLTK_DATA at it.",
            resource,
        ) from exc
    except FileNotFoundError as exc:
        if "textarena" not in str(exc.filename or exc):
            raise
        raise TextArenaUnavailableError(
            f"TextArena {textarena_version()}'s {game_id} cannot find its data ({exc.filename or exc}): "
            "TextArena's package does not ship it (a packaging bug in TextArena); install TextArena "
            "from source or pick another game."
        ) from exc
    except SyntaxError as exc:
        version = ".".join(map(str, sys.version_info[:3]))
        fstring = "f-string" in str(exc.msg)
        raise TextArenaUnavailableError(
            f"TextArena {textarena_version()}'s {game_id} cannot be imported on Python {version}: {exc.filename}, line "
            f"{exc.lineno}: SyntaxError: {exc.msg}. This is a bug in TextArena, not in your code"
            + (
                "; it uses f-string syntax that needs Python >= 3.12 (PEP 701). Use Python 3.12+ "
                "or a TextArena release that fixes it."
                if fstring
                else "; use a TextArena release that fixes it."
            )
        ) from exc
