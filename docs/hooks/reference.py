"""Generated reference pages: the CLI from the live typer app, the parts from the live registries.

An mkdocs hook (``hooks:`` in mkdocs.yml): at build time ``on_files`` adds ``reference/cli.md``
and ``reference/parts.md`` to the site, written from what the code holds at that moment, so a
new command, option, registered part or config field appears with no edit here. Nothing lists
commands or parts by name. ``python docs/hooks/reference.py OUT`` writes the same pages to OUT.
"""
from __future__ import annotations

import html
import re
import sys
import typing
from pathlib import Path
from typing import Any

CLI_PAGE = "reference/cli.md"
PARTS_PAGE = "reference/parts.md"
_BRACKET = re.compile(r"\s*\[([^\[\]]*)\]\s*$")
ROOT = Path(__file__).resolve().parents[2]


def _this_checkout_first() -> None:
    """Document this checkout's code, whatever else is installed (mkdocs restores sys.path
    after loading a hook, so this runs when the pages are made)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


def _text(s: str | None) -> str:
    """Plain text for a Markdown table cell or paragraph: no HTML, no emphasis, no table breaks."""
    s = html.escape(" ".join((s or "").split()), quote=False)
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", s)


def _code(s: str) -> str:
    return f"`{s}`" if "`" not in s else f"``{s}``"


def anchor(*words: str) -> str:
    """The heading id used for a command (``inrkit-train-ldmi``) or a part (``encoders-conv2d``)."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(words).lower()).strip("-")


# -- the CLI -----------------------------------------------------------------------------
def live_cli():
    """The ``inrkit`` typer app with every command module loaded, as a command tree."""
    import typer.main

    from inrkit_cli.main import typer_app

    return typer.main.get_command(typer_app())


def walk_commands(command, path: tuple[str, ...] = ()):
    """(path, command) for the command and every subcommand, depth first, in help order."""
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        if not sub.hidden:
            yield from walk_commands(sub, (*path, name))


def _summary(command) -> str:
    """The first paragraph of a command's help."""
    return (command.help or "").strip().split("\n\n")[0]


def _usage(command, prog: str) -> str:
    pieces = [prog, "[OPTIONS]"]  # every command has at least --help
    if getattr(command, "commands", None):
        pieces.append("COMMAND")
    for p in command.params:
        if p.param_type_name == "argument":
            name = p.name.upper() + ("..." if p.nargs == -1 else "")
            pieces.append(name if p.required else f"[{name}]")
    return " ".join(pieces)


def _param_rows(command, ctx) -> list[str]:
    rows = []
    for p in command.get_params(ctx):
        record = p.get_help_record(ctx)
        if record is None:  # hidden
            continue
        decl, help_text = record
        extra = ""
        m = _BRACKET.search(help_text or "")
        if m:
            extra, help_text = m.group(1), help_text[: m.start()]
        kind = "argument" if p.param_type_name == "argument" else "option"
        rows.append(f"| {_code(decl)} | {kind} | {_text(help_text)} | {_text(extra)} |")
    return rows


def cli_markdown(root=None, prog: str = "inrkit") -> str:
    """The CLI reference page: every command and subcommand with its usage, options and example."""
    root = root if root is not None else live_cli()
    out = [
        "# CLI reference",
        "",
        "Generated from the `inrkit` typer application when the site is built; `inrkit COMMAND --help`",
        "prints the same. Options that take a value show its type; `[default: …]` is what applies",
        "when the option is not given.",
        "",
    ]
    commands = list(walk_commands(root))
    out += ["| command | what it does |", "|---|---|"]
    for path, cmd in commands[1:]:
        full = " ".join((prog, *path))
        out.append(f"| [{_code(full)}](#{anchor(full)}) | {_text(_summary(cmd))} |")
    out.append("")
    for path, cmd in commands:
        full = " ".join((prog, *path))
        level = "#" * min(2 + max(len(path) - 1, 0), 4)
        out += [f"{level} {full} {{#{anchor(full)}}}", ""]
        for paragraph in (cmd.help or "").strip().split("\n\n"):
            if paragraph.strip():
                out += [_text(paragraph), ""]
        out += ["```text", _usage(cmd, full), "```", ""]
        ctx = cmd.make_context(full, [], resilient_parsing=True)
        out += ["| argument / option | kind | help | default, range |", "|---|---|---|---|", *_param_rows(cmd, ctx), ""]
        visible = sorted(n for n, sub in getattr(cmd, "commands", {}).items() if not sub.hidden)
        if visible:
            subs = ", ".join(f"[{_code(f'{full} {n}')}](#{anchor(full, n)})" for n in visible)
            out += [f"Subcommands: {subs}.", ""]
        if cmd.epilog:
            out += ["```console", *(f"$ {line.split(':', 1)[1].strip()}" if line.lower().startswith("example:") else line
                                     for line in cmd.epilog.strip().splitlines()), "```", ""]
    return "\n".join(out)


# -- the parts -----------------------------------------------------------------------------
def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return re.sub(r"\btyping\.", "", str(annotation)).replace("NoneType", "None")


_BOUNDS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<", "multiple_of": "multiple of", "min_length": "length ≥",
           "max_length": "length ≤"}


def _constraints(field) -> str:
    out = []
    for item in field.metadata:
        for key, sign in _BOUNDS.items():
            value = getattr(item, key, None)
            if value is not None:
                out.append(f"{sign} {value}")
    return ", ".join(out)


def _default(field) -> str:
    if field.is_required():
        return "required"
    return repr(field.get_default(call_default_factory=True))


def part_markdown(kind: str, entry) -> list[str]:
    cls = entry.cls
    out = [f"### `{entry.name}` {{#{anchor(kind, entry.name)}}}", ""]
    if entry.description:
        out += [_text(entry.description), ""]
    out += [f"Class `{cls.__module__}.{cls.__qualname__}`, config `{entry.config.__module__}.{entry.config.__qualname__}`.", ""]
    fields = entry.config.model_fields
    if not fields:
        return out + ["No config fields.", ""]
    out += ["| field | type | default | allowed | description |", "|---|---|---|---|---|"]
    for key, field in fields.items():
        out.append(f"| `{key}` | {_code(_type_name(field.annotation))} | {_code(_default(field))} | "
                   f"{_text(_constraints(field))} | {_text(field.description)} |")
    return out + [""]


def parts_markdown() -> str:
    """The parts reference page: every registry, every registered name, its config fields."""
    from inrkit.registry import KINDS, get_registry

    out = [
        "# Parts reference",
        "",
        "Generated from the registries when the site is built (built-in parts and every installed",
        "`inrkit.plugins` entry point), as `inrkit list` prints them. Each part is built as",
        "`inrkit.build(kind, name, context, **fields)`; in a run config it is `{name: ..., <fields>}`.",
        "A misspelt field is an error; `None` means \"not given\" (the part's own default applies).",
        "",
    ]
    for kind in KINDS:
        entries = get_registry(kind).entries()
        out += [f"## {kind} {{#{anchor(kind)}}}", "", "| name | description |", "|---|---|"]
        out += [f"| [`{e.name}`](#{anchor(kind, e.name)}) | {_text(e.description)} |" for e in entries]
        out.append("")
        for entry in entries:
            out += part_markdown(kind, entry)
    return "\n".join(out)


def pages() -> dict[str, str]:
    _this_checkout_first()
    return {CLI_PAGE: cli_markdown(), PARTS_PAGE: parts_markdown()}


# -- the mkdocs hook -------------------------------------------------------------------------
def on_files(files, config):
    from mkdocs.structure.files import File

    for uri, text in pages().items():
        files.append(File.generated(config, uri, content=text))
    return files


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "build/docs-reference")
    for uri, text in pages().items():
        path = target / uri
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(path)
