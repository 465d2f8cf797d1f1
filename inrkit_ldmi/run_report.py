"""``inrkit report RUN``: one self-contained HTML page about a run or a comparison.

Everything the page shows is read from what the run directory already holds (config.yaml,
run.json, summary.json, metrics.jsonl, eval.json and the PNGs the domain rendered); pictures and
curves are embedded as ``data:`` URIs, so the page needs no network and no neighbouring files.
A run's page: resolved config, data (splits and what the data became), loss and learning-rate
curves per stage, held-out metrics, samples and reconstructions. A comparison's page (a folder
with compare.json): its settings, the tables of compare.md, the reconstructions and the scaling plot.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any

import yaml

from inrkit.config import load_yaml
from inrkit.errors import CheckpointError
from inrkit.io import atomic_write_text
from inrkit.train.fast import speed_text
from inrkit.run_folder import CONFIG_FILE, RUN_INFO_FILE, SUMMARY_FILE

from .stats import split_note, stat_text

REPORT_FILE = "report.html"
COMPARE_FILE = "compare.json"
_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:right}
td:first-child,th:first-child{text-align:left}pre{background:#f5f5f5;padding:.8em;overflow:auto;font-size:13px}
figure{margin:.8em 0}figcaption{color:#555;font-size:.9em}img{max-width:100%;height:auto;border:1px solid #ddd}
.note{color:#8a5a00}
"""


def _esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path}: unreadable ({type(err).__name__}: {err})") from None


def _png_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _figure(path: Path, caption: str) -> str:
    return f'<figure><img alt="{_esc(caption)}" src="{_png_uri(path)}"><figcaption>{_esc(caption)}</figcaption></figure>'


def _num(x: Any) -> Any:
    return f"{x:.4g}" if isinstance(x, float) else ("-" if x is None else x)


def _items(n: Any) -> str:
    return f"{n} item" + ("" if n == 1 else "s")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section(key: str, title: str, body: str) -> str:
    return f'<section id="{key}"><h2>{_esc(title)}</h2>\n{body}\n</section>'


def _page(title: str, sections: list[str], where: Path) -> str:
    import re

    links = " · ".join(f'<a href="#{key}">{_esc(name)}</a>' for key, name in
                       (re.match(r'<section id="([^"]+)"><h2>(.*?)</h2>', sec).groups() for sec in sections))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_esc(title)}</title><style>{_STYLE}</style></head>\n<body><h1>{_esc(title)}</h1>\n"
            f"<p>{_esc(where)}</p><nav>{links}</nav>\n" + "\n".join(sections) + "\n</body></html>\n")


# -- a training run ------------------------------------------------------------------------------
def _metrics(run_dir: Path) -> list[dict[str, Any]]:
    file = run_dir / "metrics.jsonl"
    if not file.exists():
        return []
    records = []
    for line in file.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line cut short by a killed run
    return records


def curves_png(records: list[dict[str, Any]]) -> bytes | None:
    """Loss (log scale where positive) and learning rate against step, one column per stage."""
    stages = list(dict.fromkeys(r["stage"] for r in records if "stage" in r and "step" in r))
    if not stages:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.6 * len(stages), 5.2), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(stages), squeeze=False)
    for j, stage in enumerate(stages):
        rows = [r for r in records if r.get("stage") == stage]
        # a resumed or retrained stage logs its steps again: the last occurrence of a step wins
        by_step = {int(r["step"]): r for r in rows}
        steps = sorted(by_step)
        loss = [by_step[s].get("loss") for s in steps]
        lr = [by_step[s].get("lr") for s in steps]
        ax = axes[0, j]
        ax.plot(steps, loss, "-o", ms=2.5, color="C0")
        if all(v is not None and v > 0 for v in loss):
            ax.set_yscale("log")
        ax.set(title=f"stage {stage}: loss", xlabel="step", ylabel="loss")
        ax.grid(True, alpha=0.3)
        ax = axes[1, j]
        ax.plot(steps, lr, "-o", ms=2.5, color="C1")
        ax.set(title=f"stage {stage}: learning rate", xlabel="step", ylabel="lr")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _heldout_table(held: dict[str, Any]) -> str:
    rows = [[k, stat_text(v)] for k, v in held.items() if isinstance(v, dict)]
    return _table(["metric", "mean ± std over items"], rows)


def _pictures(run_dir: Path, folder: str, stems: tuple[str, ...]) -> list[str]:
    out = []
    root = run_dir / folder
    if not root.is_dir():
        return out
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        for stem in stems:
            png = sub / f"{stem}.png"
            if png.is_file():
                out.append(_figure(png, f"{stem} {sub.name}"))
    for png in sorted(root.glob("*.png")):  # what `inrkit sample` writes (samples-RxR-seedS.png)
        if not png.stem.endswith("-pixels"):
            out.append(_figure(png, png.stem))
    return out


def run_sections(run_dir: Path) -> list[str]:
    config_file = run_dir / CONFIG_FILE
    if not config_file.exists():
        raise CheckpointError(f"{run_dir}: not a run directory (no {CONFIG_FILE}) nor a comparison (no {COMPARE_FILE})")
    config = load_yaml(config_file)  # unreadable, not UTF-8 or not YAML: one error naming the file
    info = _read_json(run_dir / RUN_INFO_FILE) or {}
    summary = _read_json(run_dir / SUMMARY_FILE) or {}
    evaluation = _read_json(run_dir / "eval.json")
    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=None)
    config_section = _section("config", "Resolved config",
                              f"<details><summary>config.yaml ({len(text.splitlines())} lines)</summary><pre>{_esc(text)}</pre></details>")
    sections = []

    data = info.get("data") or {}
    lines = []
    if "n_train" in data:
        lines.append(f"<p>{_esc(split_note(data['n_train'], data.get('n_val', 0)))}</p>")
    if data.get("conversion"):
        lines.append(f"<p>{_esc(data['conversion'])}</p>")
    sections.append(_section("data", "Data", "\n".join(lines) or "<p>No run.json: the data are not described.</p>"))

    png = curves_png(_metrics(run_dir))
    body = (f'<img alt="loss and learning-rate curves" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
            if png else '<p class="note">No metrics.jsonl records yet.</p>')
    stage_rows = [[name, s.get("steps"), s.get("trained_steps"), s.get("wall_time_s"), s.get("items_per_s"),
                   _num((s.get("final") or {}).get("loss")), speed_text(s["speed"]) if s.get("speed") else "",
                   s.get("note") or ""]
                  for name, s in (summary.get("stages") or {}).items()]
    if stage_rows:
        body += _table(["stage", "steps", "trained", "wall s", "items/s", "final loss", "speed settings", "note"], stage_rows)
    sections.append(_section("curves", "Loss and learning rate per stage", body))

    held = [(name, s["heldout"]) for name, s in (summary.get("stages") or {}).items() if s.get("heldout")]
    body = "".join(f"<h3>after stage {_esc(name)} ({_items(h.get('n_items'))})</h3>{_heldout_table(h)}"
                   for name, h in held)
    if evaluation and isinstance(evaluation.get("reconstruction"), dict):
        rec = evaluation["reconstruction"]
        body += f"<h3>inrkit evaluate ({_esc(evaluation.get('weights'))} weights, {_items(rec.get('n_items'))})</h3>"
        body += _heldout_table(rec)
        if evaluation.get("samples"):
            shown = {k: v for k, v in evaluation["samples"].items() if not isinstance(v, (dict, list))}
            body += _table(["sample metric", "value"], [[k, v] for k, v in shown.items()])
    sections.append(_section("heldout", "Held-out metrics", body or '<p class="note">No held-out metrics recorded.</p>'))

    pics = _pictures(run_dir, "samples", ("samples",))
    sections.append(_section("samples", "Samples", "".join(pics) or '<p class="note">No samples rendered.</p>'))
    pics = _pictures(run_dir, "reconstructions", ("reconstructions", "targets"))
    sections.append(_section("reconstructions", "Held-out reconstructions and their targets",
                             "".join(pics) or '<p class="note">No reconstructions rendered.</p>'))
    return [*sections, config_section]


# -- a comparison ---------------------------------------------------------------------------------
def compare_sections(out: Path, report: dict[str, Any]) -> list[str]:
    from .compare.report import table_rows

    settings = report.get("settings") or {}
    rows = [[k, json.dumps(v) if isinstance(v, (dict, list)) else v] for k, v in settings.items()]
    sections = [_section("settings", "Comparison settings", _table(["setting", "value"], rows))]
    tables = ""
    for point in report.get("points") or []:
        header, cells = table_rows(point)
        tables += (f"<h3>{_esc(point['label'])}</h3>" if point.get("label") else "") + _table(header, cells)
    sections.append(_section("compare-tables", "Hypernetworks compared", tables))
    files = report.get("files") or {}
    for key, title in (("reconstructions", "Held-out reconstructions"), ("scaling_plot", "Scaling")):
        name = files.get(key)
        body = _figure(out / name, title) if name and (out / name).is_file() else '<p class="note">Not produced (a sweep of one point has no scaling plot).</p>'
        sections.append(_section("scaling" if key == "scaling_plot" else key, title, body))
    return sections


def write_html_report(path: str | Path, out: str | Path | None = None) -> Path:
    """The page for a run directory or a comparison folder; written to ``out`` (default PATH/report.html)."""
    path = Path(path).expanduser()
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such run directory")
    compare = _read_json(path / COMPARE_FILE)
    if compare is not None:
        hypernets = ", ".join((compare.get("settings") or {}).get("hypernets", []))
        page = _page(f"inrkit comparison: {hypernets} ({path.name})", compare_sections(path, compare), path)
    else:
        page = _page(f"inrkit run: {path.name}", run_sections(path), path)
    target = Path(out).expanduser() if out is not None else path / REPORT_FILE
    from inrkit.outputs import output_file

    with output_file(target) as tmp:  # replaces only a page inrkit wrote
        atomic_write_text(tmp, page)
    return target
