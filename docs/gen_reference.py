"""Generate docs/reference.md: every `sdr-assets` command's --help and every Dagster resource's
fields (type, default, description), read from the code itself so nothing is restated by hand.

    .venv/bin/python docs/gen_reference.py           # rewrite docs/reference.md
    .venv/bin/python docs/gen_reference.py --check   # exit 1 if docs/reference.md is stale

sdr_assets_tests/test_docs.py runs the same comparison, so a new command, option or resource
field fails the tests until this script is run again.
"""

import ast
import inspect
import json
import os
import re
import sys
import tempfile
import textwrap
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from unittest.mock import patch

import click

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "docs" / "reference.md"
HELP_WIDTH = 100  # fixed, so the text does not depend on the terminal that generates it


@dataclass(frozen=True)
class ResourceField:
    name: str
    type_name: str
    default: str  # as JSON, the way --config-json and the launchpad take it
    description: str


@dataclass(frozen=True)
class ResourceDoc:
    key: str  # the resource key in Definitions (what --config-json's "resources" names)
    class_name: str
    module: str
    doc: str
    fields: list[ResourceField]


def cli_commands(
    group: click.Command | None = None, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], click.Command]]:
    """Every visible command under the `sdr-assets` group, depth first, groups included."""
    if group is None:
        from sdr_assets.cli import main

        group = main
    found = [(path, group)]
    if isinstance(group, click.Group):
        for name in sorted(group.commands):
            cmd = group.commands[name]
            if not cmd.hidden:
                found += cli_commands(cmd, path + (name,))
    return found


def command_help(path: tuple[str, ...], cmd: click.Command) -> str:
    """The --help text of one command, rendered at a fixed width."""
    from sdr_assets.cli import main

    ctx = click.Context(main, info_name="sdr-assets", terminal_width=HELP_WIDTH, max_content_width=HELP_WIDTH)
    parent = ctx
    for name in path[:-1]:
        parent = click.Context(parent.command.commands[name], info_name=name, parent=parent)
    if path:
        ctx = click.Context(cmd, info_name=path[-1], parent=parent)
    return cmd.get_help(ctx).rstrip()


def _source_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment written after it in the class body (and comment-only lines
    directly below it), for fields that carry no pydantic description."""
    lines, _ = inspect.getsourcelines(cls)
    src = textwrap.dedent("".join(lines))
    body = ast.parse(src).body[0].body
    text = src.splitlines()
    out: dict[str, str] = {}
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        line = text[node.lineno - 1]
        if "#" not in line:
            continue
        parts = [line.split("#", 1)[1].strip()]
        nxt = node.end_lineno
        while nxt < len(text) and text[nxt].strip().startswith("#"):
            parts.append(text[nxt].strip()[1:].strip())
            nxt += 1
        out[node.target.id] = " ".join(parts)
    return out


def _type_name(annotation) -> str:
    return annotation.__name__ if isinstance(annotation, type) else str(annotation).replace("typing.", "")


@contextmanager
def _scratch_home():
    """Load the Definitions against a throw-away data root: the first load on a data root fixes
    a partition start in its settings.json, which must not happen to ./var. A start already set
    (the test session's) is kept: the partitions are built once per process, at import."""
    from datetime import UTC, datetime, timedelta

    start = os.environ.get("SDR_ASSETS_PARTITION_START") or (datetime.now(UTC) - timedelta(days=7)).strftime("%Y-%m-%d")
    with (
        tempfile.TemporaryDirectory(prefix="sdr-docs-") as tmp,
        patch.dict(os.environ, {"SDR_ASSETS_HOME": tmp, "SDR_ASSETS_PARTITION_START": start}),
    ):
        yield


def resources() -> list[ResourceDoc]:
    """Every resource the Definitions bind, with its fields from the pydantic model."""
    with _scratch_home():
        from sdr_assets.defs import build_definitions

        bound = build_definitions().resources or {}
    docs = []
    for key in sorted(bound):
        cls = type(bound[key])
        comments = _source_comments(cls)
        fields = [
            ResourceField(
                name,
                _type_name(info.annotation),
                json.dumps(info.get_default(call_default_factory=True)),
                info.description or comments.get(name, ""),
            )
            for name, info in cls.model_fields.items()
        ]
        docs.append(ResourceDoc(key, cls.__name__, cls.__module__, inspect.getdoc(cls) or "", fields))
    return docs


def error_classes() -> list[tuple[type, int]]:
    """SdrAssetsError and every subclass in sdr_assets/errors.py, depth first, with its depth
    (subclasses elsewhere are left out: which of them are loaded depends on what was imported)."""
    import sdr_assets.errors as errors

    def walk(cls: type, depth: int) -> list[tuple[type, int]]:
        out = [(cls, depth)]
        for sub in sorted(cls.__subclasses__(), key=lambda c: c.__name__):
            if sub.__module__ == errors.__name__:
                out += walk(sub, depth + 1)
        return out

    return walk(errors.SdrAssetsError, 0)


def anchor(text: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but '-' and '_' dropped, spaces to
    '-' (test_docs.py checks links with it)."""
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or "-"


def render() -> str:
    cmds = cli_commands()
    res = resources()
    out = [
        "# Reference: commands and resources",
        "",
        "Generated by `docs/gen_reference.py` from the code; do not edit by hand. After changing",
        "a command, an option or a resource field, run `.venv/bin/python docs/gen_reference.py`",
        "(`sdr_assets_tests/test_docs.py` fails until it is current).",
        "",
        "## Contents",
        "",
    ]
    out += [f"- [`{' '.join(('sdr-assets',) + p)}`](#{anchor(' '.join(('sdr-assets',) + p))})" for p, _ in cmds]
    out += [f"- [resource `{r.key}` ({r.class_name})](#{anchor(f'resource {r.key} ({r.class_name})')})" for r in res]
    out += ["- [Errors](#errors)", ""]
    for path, cmd in cmds:
        name = " ".join(("sdr-assets",) + path)
        out += [f"## {name}", "", "```", command_help(path, cmd), "```", ""]
    for r in res:
        out += [
            f"## resource {r.key} ({r.class_name})",
            "",
            f"`{r.module}.{r.class_name}`, bound as resource `{r.key}`. {r.doc}",
            "",
            "Change a field for one run in the launchpad, or from the command line with",
            f'`--config-json \'{{"resources": {{"{r.key}": {{"config": {{"FIELD": VALUE}}}}}}}}\'`.',
            "",
            "| field | type | default | what |",
            "| --- | --- | --- | --- |",
        ]
        out += [f"| `{f.name}` | {f.type_name} | `{_cell(f.default)}` | {_cell(f.description)} |" for f in r.fields]
        out.append("")
    out += [
        "## Errors",
        "",
        "Every error the project raises on purpose derives from `SdrAssetsError`",
        "(`sdr_assets/errors.py`); the CLI prints it as one `error: ...` line and exits with code 2.",
        "",
    ]
    out += [f"{'  ' * depth}- `{cls.__name__}`: {inspect.getdoc(cls) or ''}" for cls, depth in error_classes()]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(REPO))
    text = render()
    if "--check" in argv:
        current = REFERENCE.read_text() if REFERENCE.exists() else ""
        if current != text:
            print(f"{REFERENCE} is stale: run .venv/bin/python docs/gen_reference.py", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE} ({len(text.splitlines())} lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
