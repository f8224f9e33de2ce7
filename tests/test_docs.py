"""The documentation holds together: README.md and docs/*.md link only to files that exist, the
mkdocs nav lists every page (and nothing else), the README's quick start is the one the site shows,
and bench/report.py writes its table into docs/benchmarks.md.

The strict site build itself (`mkdocs build --strict`, which also checks anchors) is a step of
.ci/run, not a test: it needs the `docs` extra.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def prose(text: str) -> str:
    """``text`` without fenced code blocks and inline code (links there are examples, not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def relative_links(page: Path) -> list[str]:
    targets = LINK.findall(prose(page.read_text()))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def broken_links(page: Path) -> list[str]:
    broken = []
    for target in relative_links(page):
        path = target.split("#", 1)[0]
        if not (page.parent / path).resolve().exists():
            broken.append(target)
    return broken


def nav_pages() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:"):]
    return re.findall(r":\s+(\S+\.md)\s*$", nav, flags=re.M)


@pytest.mark.parametrize("page", [ROOT / "README.md", *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_check_finds_a_broken_link(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    (tmp_path / "there.md").write_text("# There\n")
    page.write_text("[ok](there.md#a) [gone](nowhere.md) [web](https://example.com) `[code](x.md)`\n"
                    "```md\n[example](also-not-a-link.md)\n```\n")
    assert broken_links(page) == ["nowhere.md"]


def test_the_nav_lists_every_page_once_and_nothing_else() -> None:
    listed = nav_pages()
    assert sorted(listed) == sorted(p.name for p in PAGES)
    assert len(listed) == len(set(listed))


def test_the_readme_links_every_page_in_its_map() -> None:
    readme = (ROOT / "README.md").read_text()
    assert [p.name for p in PAGES if f"(docs/{p.name})" not in readme] == []


def test_the_readme_and_the_site_show_the_same_quick_start() -> None:
    def first_sh_block(text: str) -> str:
        match = re.search(r"```sh\n(.*?)```", text, re.S)
        assert match is not None
        return match.group(1)

    readme = (ROOT / "README.md").read_text()
    quick_start = readme[readme.index("## Quick start\n"):]
    assert first_sh_block(quick_start) == first_sh_block((DOCS / "getting-started.md").read_text())


def test_the_readme_keeps_the_documented_test_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert 'pip install -e ".[test,bench]" && python -m pytest -q\n' in readme
    assert 'python -m pytest -q -m "not slow"\n' in readme


def _report_module() -> object:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench" / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bench_report_writes_its_table_into_the_benchmarks_page(tmp_path: Path) -> None:
    report = _report_module()
    assert report.DOCS_PAGE == DOCS / "benchmarks.md"  # type: ignore[attr-defined]
    page_text = report.DOCS_PAGE.read_text()  # type: ignore[attr-defined]
    assert report.START in page_text and report.END in page_text  # type: ignore[attr-defined]
    assert report.START not in (ROOT / "README.md").read_text()  # type: ignore[attr-defined]
    copy = tmp_path / "benchmarks.md"
    copy.write_text(page_text)
    assert report.update_docs("| new | table |\n", copy)  # type: ignore[attr-defined]
    written = copy.read_text()
    assert "| new | table |" in written
    assert written.startswith(page_text.split(report.START)[0])  # type: ignore[attr-defined]
    assert written.endswith(page_text.split(report.END)[1])  # type: ignore[attr-defined]
    (tmp_path / "plain.md").write_text("# No markers\n")
    assert not report.update_docs("| x |\n", tmp_path / "plain.md")  # type: ignore[attr-defined]
