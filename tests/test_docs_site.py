"""The documentation site: it builds offline with warnings as errors, and its generated
references list every command, option and registered part of the live code.

The build runs exactly what ``make docs`` runs (``mkdocs build --strict`` with mkdocs.yml),
into a temporary folder; the references are compared against the typer app (walked through
typer's own registrations and ``--help``, not the generator's traversal) and the registries.
"""
from __future__ import annotations

import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pydantic
import pytest
import typer
import typer.main
from typer.testing import CliRunner

from inrkit.registry import KINDS, PartConfig, get_registry, priors

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _reference_module():
    spec = importlib.util.spec_from_file_location("docs_reference", DOCS / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = _reference_module()


def _build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
                           "--site-dir", str(site)], cwd=config.parent, env=env, capture_output=True, text=True)


def _sections(markdown: str) -> dict[str, str]:
    """Heading id → the text up to the next heading."""
    out, current = {}, None
    for line in markdown.splitlines():
        m = re.match(r"#+ .*\{#([a-z0-9-]+)\}\s*$", line)
        if m:
            current = m.group(1)
            out[current] = ""
        elif current is not None:
            out[current] += line + "\n"
    return out


# -- the build ---------------------------------------------------------------------------------
def test_make_docs_runs_the_strict_build():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^docs:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe and "mkdocs build --strict" in recipe.group(1)


def test_site_builds_offline_with_warnings_as_errors(tmp_path):
    site = tmp_path / "site"
    done = _build(ROOT / "mkdocs.yml", site)
    assert done.returncode == 0, done.stdout + done.stderr
    for page in ("index", "concepts", "install", "results", "reliability", "reference/cli", "reference/parts",
                 "reference/api", *(f"tutorials/{p.stem}" for p in (DOCS / "tutorials").glob("*.md"))):
        assert (site / f"{page}.html").is_file(), page
    assert (site / "figures" / "assembly.svg").is_file()
    api = (site / "reference" / "api.html").read_text()
    for name in ("inrkit.build", "inrkit.load_run", "inrkit_ldmi.model.LDMI", "inrkit_ldmi.compare.compare",
                 "inrkit.train.trainer.Trainer"):
        assert f'id="{name}"' in api, name
    # nothing the pages load comes from the network (fonts, scripts, styles)
    for page in site.rglob("*.html"):
        remote = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', page.read_text())
        assert not remote, (page, remote)


def test_a_broken_link_fails_the_build(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(DOCS, copy / "docs", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "mkdocs.yml", copy / "mkdocs.yml")
    with open(copy / "docs" / "index.md", "a") as f:
        f.write("\nSee [a page that does not exist](nowhere.md).\n")
    done = _build(copy / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "nowhere.md" in done.stdout + done.stderr


# -- the CLI reference --------------------------------------------------------------------------
def _typer_paths(app: typer.Typer, prefix: tuple[str, ...] = ()):
    """Every command path from typer's own registrations (independent of the generator's walk)."""
    for info in app.registered_commands:
        yield (*prefix, info.name or info.callback.__name__.replace("_", "-"))
    for group in app.registered_groups:
        name = group.name or group.typer_instance.info.name
        yield (*prefix, name)
        yield from _typer_paths(group.typer_instance, (*prefix, name))


def _help_flags(output: str) -> set[str]:
    """The option names of a rich ``--help`` screen: the leading flags of its option rows."""
    flags = set()
    for line in output.splitlines():
        row = line.strip().lstrip("│").strip()
        lead = re.match(r"((?:-{1,2}[A-Za-z][\w-]*[\s,/]*)+)", row)
        if lead:
            flags |= set(FLAG.findall(lead.group(1)))
    return flags


@pytest.fixture(scope="module")
def cli_app():
    from inrkit_cli.main import typer_app

    return typer_app()


@pytest.fixture(scope="module")
def cli_page(cli_app):
    return reference.cli_markdown(typer.main.get_command(cli_app))


def test_cli_reference_lists_every_command_and_option(cli_app, cli_page):
    sections = _sections(cli_page)
    paths = list(_typer_paths(cli_app))
    assert len(paths) >= 10
    runner = CliRunner()
    checked = 0
    for path in paths:
        full = " ".join(("inrkit", *path))
        key = reference.anchor(full)
        assert key in sections, f"{full} is missing from the CLI reference"
        help_out = runner.invoke(cli_app, [*path, "--help"], terminal_width=400)
        assert help_out.exit_code == 0, (full, help_out.output)
        flags = _help_flags(help_out.output)
        assert "--help" in flags
        for flag in flags:
            rows = [line for line in sections[key].splitlines() if line.startswith("| `")]
            assert any(re.search(rf"(?<![\w-]){flag}(?![\w-])", row) for row in rows), f"{full}: {flag} is not in its table"
            checked += 1
    assert checked >= 80  # the option screens were read, not an empty parse
    documented = {k for k in sections if k.startswith("inrkit")}
    assert documented == {reference.anchor(" ".join(("inrkit", *p))) for p in paths} | {"inrkit"}


def test_the_cli_reference_follows_the_app_it_is_given():
    app = typer.Typer()

    @app.command("brand-new", epilog="Example: inrkit brand-new --knob 3")
    def brand_new(knob: int = typer.Option(1, "--knob", help="A knob only this test has.")):
        """A command added after the generator was written."""

    @app.command("other")
    def other():
        """Keeps typer from collapsing a one-command app."""

    page = reference.cli_markdown(typer.main.get_command(app))
    section = _sections(page)["inrkit-brand-new"]
    assert "A command added after the generator was written." in section
    assert "`--knob <int>`" in section and "A knob only this test has." in section and "default: 1" in section
    assert "$ inrkit brand-new --knob 3" in section


# -- examples in --help and in the pages ---------------------------------------------------------
def _resolve(root, words: list[str]):
    """(command path, command, remaining words) for the words after ``inrkit``."""
    cmd, path = root, []
    while words and getattr(cmd, "commands", None) and words[0] in cmd.commands:
        cmd = cmd.commands[words[0]]
        path.append(words.pop(0))
    return path, cmd, words


def _check_line(root, line: str, where: str) -> None:
    words = shlex.split(line.split(" #", 1)[0])
    assert words[0] == "inrkit", where
    path, cmd, rest = _resolve(root, words[1:])
    assert path, f"{where}: '{line}' names no command"
    assert not getattr(cmd, "commands", None), f"{where}: '{line}' stops at a group"
    known = {opt for p in cmd.params for opt in (*p.opts, *p.secondary_opts)}
    for word in rest:
        if word.startswith("-"):
            assert word.split("=", 1)[0] in known, f"{where}: '{line}': {word} is not an option of inrkit {' '.join(path)}"


def test_every_command_help_ends_with_a_valid_example(cli_app):
    root = typer.main.get_command(cli_app)
    for path, cmd in reference.walk_commands(root):
        full = " ".join(("inrkit", *path))
        assert cmd.epilog and cmd.epilog.startswith("Example: inrkit "), f"{full}: its --help has no 'Example: inrkit ...' line"
        example = cmd.epilog.split(":", 1)[1].strip()
        _check_line(root, example, f"{full} --help")
        if path and not getattr(cmd, "commands", None):
            assert example.startswith(full + " ") or example == full, f"{full}: its example runs another command"


def test_command_lines_in_the_pages_are_valid(cli_app):
    """Pages outside tutorials/ are not executed: their inrkit lines must at least parse."""
    root = typer.main.get_command(cli_app)
    pages = [p for p in DOCS.rglob("*.md") if "tutorials" not in p.parts] + [ROOT / "README.md"]
    checked = 0
    for page in pages:
        for lang, block in re.findall(r"```(\w*)[^\n]*\n(.*?)```", page.read_text(), re.S):
            if lang not in ("", "console", "text", "bash"):
                continue
            for line in block.replace("\\\n", " ").splitlines():  # shell line continuations joined
                line = line.strip().removeprefix("$ ")
                if line.startswith("inrkit "):
                    _check_line(root, line, page.name)
                    checked += 1
    assert checked >= 5


# -- the parts reference -------------------------------------------------------------------------
def test_parts_reference_lists_every_registered_part_and_field():
    page = reference.parts_markdown()
    sections = _sections(page)
    total = 0
    for kind in KINDS:
        assert reference.anchor(kind) in sections, kind
        for name in get_registry(kind).names():
            key = reference.anchor(kind, name)
            assert key in sections, f"{kind}/{name} is missing from the parts reference"
            entry = get_registry(kind).get(name)
            for field_name, default in entry.fields().items():
                row = [line for line in sections[key].splitlines() if line.startswith(f"| `{field_name}` |")]
                assert row, f"{kind}/{name}: field {field_name} is missing"
                assert f"`{default}`" in row[0], f"{kind}/{name}.{field_name}: default {default} is missing"
            total += 1
    assert total >= 25


class _LateConfig(PartConfig):
    steps: int = pydantic.Field(7, ge=1, description="a field only this test has")


def test_a_part_registered_later_appears_with_its_fields():
    class LatePrior:
        """A prior registered after the generator was written."""

    priors.register("late_test_prior", config=_LateConfig)(LatePrior)
    try:
        section = _sections(reference.parts_markdown())["priors-late-test-prior"]
    finally:
        del priors._entries["late_test_prior"]
    assert "A prior registered after the generator was written." in section
    row = next(line for line in section.splitlines() if line.startswith("| `steps` |"))
    assert "`int`" in row and "`7`" in row and "≥ 1" in row and "a field only this test has" in row
