"""The docs cannot fall behind the code: every command and resource field is documented, the
generated reference is current, every relative link resolves, README stays short."""

import importlib.util
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
README = REPO / "README.md"
README_MAX_LINES = 250


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


@pytest.fixture(scope="module")
def resources():
    return gen.resources()


def _pages() -> list[Path]:
    return [README] + sorted(DOCS.glob("*.md")) + [REPO / "bench" / "RESULTS.md"]


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code (where links are not links)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", text, flags=re.M):
        base = gen.anchor(heading.replace("`", ""))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def test_reference_is_current(resources):
    text = gen.render()
    current = gen.REFERENCE.read_text() if gen.REFERENCE.exists() else ""
    assert current == text, "docs/reference.md is stale: run .venv/bin/python docs/gen_reference.py"


def test_every_command_is_in_the_readme_table():
    readme = README.read_text()
    missing = [
        " ".join(("sdr-assets",) + path)
        for path, _ in gen.cli_commands()
        if path and f"`{' '.join(('sdr-assets',) + path)}" not in readme
    ]
    assert not missing, f"commands missing from README.md's command table: {missing}"


def test_every_command_and_resource_field_is_in_the_reference(resources):
    reference = gen.REFERENCE.read_text()
    sections = dict(re.findall(r"^## ([^\n]+)\n(.*?)(?=^## |\Z)", reference, flags=re.M | re.S))
    missing = [
        " ".join(("sdr-assets",) + p) for p, _ in gen.cli_commands() if " ".join(("sdr-assets",) + p) not in sections
    ]
    for r in resources:
        body = sections.get(f"resource {r.key} ({r.class_name})", "")
        missing += [f"{r.class_name}.{f.name}" for f in r.fields if f"| `{f.name}` |" not in body]
    assert not missing, f"missing from docs/reference.md: {missing}"
    assert len(resources) >= 3 and all(r.fields for r in resources)


def test_every_resource_is_explained_in_a_guide(resources):
    guides = " ".join(p.read_text() for p in sorted(DOCS.glob("*.md")) if p.name != "reference.md")
    missing = [r.class_name for r in resources if r.class_name not in guides]
    assert not missing, f"resources no topic guide in docs/ mentions: {missing}"


def test_every_environment_variable_is_documented():
    names = set()
    for src in (REPO / "sdr_assets").rglob("*.py"):
        names |= set(re.findall(r"\bSDR_ASSETS_[A-Z][A-Z_]*[A-Z]\b", src.read_text()))
    docs = " ".join(p.read_text() for p in _pages())
    missing = sorted(n for n in names if n not in docs)
    assert len(names) >= 5
    assert not missing, f"environment variables the code reads but no doc names: {missing}"


def test_relative_links_resolve():
    broken = []
    for page in _pages():
        for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page.read_text())):
            if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
                continue
            path, _, frag = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif frag and dest.suffix == ".md" and frag not in _anchors(dest):
                broken.append(f"{page.name}: {target} (no heading #{frag})")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_link_checker_sees_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Top `x`\n\n## A b: c\n\n```\n## not a heading\n```\n")
    assert _anchors(page) == {"top-x", "a-b-c"}
    assert _prose("see [a](b.md) and `[c](d.md)`") == "see [a](b.md) and "


def _layout_sections() -> dict[str, str]:
    """README's layout map: entry ("dsp/", "cli.py, cli_sensors.py", ...) -> its text."""
    block = re.search(r"^## Layout\n+```\n(.*?)^```", README.read_text(), flags=re.M | re.S)
    assert block, "README.md has no '## Layout' code block"
    sections: dict[str, str] = {}
    entry = None
    for line in block.group(1).splitlines():
        m = re.match(r"^  (\S.*?)(?:\s{2,}|$)(.*)", line)
        if m:
            entry = m.group(1)
            sections[entry] = line
        elif entry and line.startswith("   "):
            sections[entry] += " " + line.strip()
    return sections


def test_layout_map_lists_every_module():
    sections = _layout_sections()
    missing = []
    for src in sorted((REPO / "sdr_assets").rglob("*.py")):
        rel = src.relative_to(REPO / "sdr_assets")
        if src.name == "__init__.py":
            if len(rel.parts) > 1 and f"{rel.parts[0]}/" not in sections:
                missing.append(f"{rel.parts[0]}/")
            continue
        if len(rel.parts) == 1:
            found = any(re.search(rf"\b{re.escape(src.name)}\b", k) for k in sections)
        else:
            text = sections.get(f"{rel.parts[0]}/", "")
            found = re.search(rf"(?<![\w/]){re.escape(src.name)}\b", text) is not None
        if not found:
            missing.append(str(rel))
    assert not missing, f"modules missing from README.md's layout map: {missing}"


def test_readme_is_short_and_links_every_guide():
    readme = README.read_text()
    assert len(readme.splitlines()) <= README_MAX_LINES
    guides = {p.name for p in DOCS.glob("*.md")}
    unlinked = sorted(g for g in guides if f"docs/{g}" not in readme)
    assert not unlinked, f"docs not linked from README.md: {unlinked}"
