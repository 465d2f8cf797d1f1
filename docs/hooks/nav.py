"""mkdocs hook: every tutorial in docs/tutorials/ is in the nav, whether mkdocs.yml names it or not.

mkdocs.yml orders the tutorials it names; one added later is appended to the "Tutorials"
section, so a new tutorial is on the site without an edit here (other pages left out of the
nav fail the strict build: ``validation.omitted_files``).
"""
from __future__ import annotations

from pathlib import Path

SECTION = "Tutorials"


def _listed(items) -> set[str]:
    out = set()
    for item in items:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            out |= _listed(value)
        else:
            out.add(value)
    return out


def on_config(config):
    docs = Path(config["docs_dir"])
    tutorials = sorted(p.relative_to(docs).as_posix() for p in (docs / "tutorials").glob("*.md"))
    for item in config["nav"] or []:
        if isinstance(item, dict) and SECTION in item:
            section = item[SECTION]
            section += [t for t in tutorials if t not in _listed(section)]
            break
    else:
        config["nav"] = [*(config["nav"] or []), {SECTION: tutorials}]
    return config
