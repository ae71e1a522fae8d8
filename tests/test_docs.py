"""The documentation: the README's links, the generated configuration reference, and the MkDocs site."""

from __future__ import annotations

import difflib
import html
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from palaestra.config import RunConfig
from palaestra.config_reference import PAGE, missing_descriptions, render_reference

ROOT = Path(__file__).parents[1]


def test_config_reference_is_current():
    committed = (ROOT / PAGE).read_text()
    generated = render_reference()
    if committed != generated:
        diff = "".join(
            list(
                difflib.unified_diff(
                    committed.splitlines(True), generated.splitlines(True), str(PAGE), "generated"
                )
            )[:40]
        )
        pytest.fail(f"{PAGE} is out of date with the config models: run `make docs-config`\n{diff}")


def test_every_config_field_has_a_description():
    assert missing_descriptions() == [], "add a Field(description=...) to each of these config fields"


def test_reference_is_rendered_from_the_field_descriptions(monkeypatch):
    field = RunConfig.model_fields["seed"]
    monkeypatch.setattr(field, "description", "A brand-new description.")
    row = next(line for line in render_reference().splitlines() if line.startswith("| `seed` |"))
    assert row == "| `seed` | `int` | `0` | A brand-new description. |"
    monkeypatch.setattr(field, "description", None)
    assert "run.seed" in missing_descriptions()


def test_reference_covers_every_section_and_algorithm():
    page = render_reference()
    for heading in (
        "## `run`",
        "### `model.lora`",
        "### `envs.train[]`",
        "### `rollout.ray`",
        "## `placement`",
    ):
        assert f"\n{heading}\n" in page
    for name in ("grpo", "arpo", "gigpo", "semi_online", "critique_grpo", "cgi"):
        assert f"### `algorithm` with `name: {name}`" in page
    assert "| `steps` | `int` (≥ 1) | `100` |" in page
    assert "| `schedule` | one of `constant`, `cosine`, `linear` | `constant` |" in page


def _heading_ids(markdown: str) -> set[str]:
    """The ids GitHub gives a page's headings (lower case, punctuation dropped, spaces to hyphens)."""
    titles = re.findall(r"^#+ (.+)$", markdown, flags=re.M)
    return {re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-") for title in titles}


def test_readme_is_short_and_its_links_exist():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) < 250
    assert "make quickstart" in text and "make test" in text
    links = re.findall(r"\]\(((?:docs|benchmarks)/[^)#]+)(?:#([^)]+))?\)", text)
    assert links, "the README links into docs/"
    missing = [path for path, _ in links if not (ROOT / path).is_file()]
    assert missing == []
    bad_anchors = [
        f"{path}#{anchor}"
        for path, anchor in links
        if anchor and anchor not in _heading_ids((ROOT / path).read_text())
    ]
    assert bad_anchors == []


def test_custom_env_example_is_the_same_in_readme_and_docs():
    """tests/envs/test_registration.py runs the README's copy; the docs page must show the same code."""
    marker = "<!-- example: custom env -->"
    readme, page = ((ROOT / name).read_text() for name in ("README.md", "docs/writing-an-env.md"))
    block = readme[
        readme.index(marker) : readme.index("```\n", readme.index("```python", readme.index(marker)) + 1)
    ]
    assert block in page


def test_tool_env_example_runs_and_passes_the_checker():
    """docs/tools.md's example is real code: it registers an env that passes `palaestra envs check`."""
    from palaestra.envs.checker import run_checks

    page = (ROOT / "docs" / "tools.md").read_text()
    start = page.index("```python", page.index("<!-- example: tool env -->")) + len("```python")
    code = page[start : page.index("```", start)]
    exec(
        compile(code.replace('"mine/Capitals-v0"', '"docs/Capitals-v0"') + "\n", "docs/tools.md", "exec"), {}
    )
    report = run_checks("docs/Capitals-v0")
    assert report.ok, str(report)
    assert "the expert made 1 valid calls" in next(f.detail for f in report.findings if f.check == "tools")


def test_docs_site_builds_strict(tmp_path):
    """`mkdocs build --strict` (as `make docs`): every page in the nav, every link and anchor resolves,
    the API pages render from the docstrings, the benchmarks page includes benchmarks/README.md."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TextEnv" in (site / "api" / "envs" / "index.html").read_text()
    assert "max_skipped_steps" in (site / "reference" / "config" / "index.html").read_text()
    bench_sections = re.findall(r"^## (.+)$", (ROOT / "benchmarks" / "README.md").read_text(), flags=re.M)
    bench_page = html.unescape(re.sub(r"<[^>]+>", "", (site / "benchmarks" / "index.html").read_text()))
    assert bench_sections and all(title.replace("`", "") in bench_page for title in bench_sections)
    assert "fonts.googleapis.com" not in (site / "index.html").read_text()  # builds and reads offline
