"""What a hypernetwork comparison shows: markdown and rich tables, reconstructions side by side,
and the log-log scaling plot of a sweep. Everything reads the plain-data report of ``compare``."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from inrkit.io import atomic_write_text

COLUMNS = ("hypernet", "hypernet params", "INR params", "INR/HN", "steps")
TAIL = ("train items/s", "train peak MiB", "decode ms", "status")
OUTCOMES = {"oom": "out of memory", "disk": "no room on disk for its checkpoint", "failed": "training diverged"}


def fmt_count(n: int | None, millions: bool | None = None) -> str:
    """``32,771`` or ``0.823M``; ``millions`` fixes the form (one per table column), else by size."""
    if n is None:
        return "-"
    return f"{n / 1e6:.3f}M" if (n >= 1e5 if millions is None else millions) else f"{n:,}"


def fmt_counts(values: list[int | None]) -> list[str]:
    """One column of parameter counts in one number format: millions when its largest is >= 1e5."""
    known = [v for v in values if v is not None]
    millions = bool(known) and max(known) >= 1e5
    return [fmt_count(v, millions) for v in values]


def fmt_stat(stat: dict[str, Any] | None, digits: int = 4) -> str:
    if stat is None:
        return "-"
    mean = f"{stat['mean']:.{digits}g}"
    return mean if stat.get("std") is None else f"{mean} ± {stat['std']:.2g}"


def metric_names(point: dict[str, Any]) -> list[str]:
    names: list[str] = []
    for row in point["results"]:
        names += [k for k in row["metrics"] if k not in names]
    return names


def table_rows(point: dict[str, Any], metrics: list[str] | None = None) -> tuple[list[str], list[list[str]]]:
    """Header and string cells of one point's table (``metrics``: which metric columns)."""
    metrics = metric_names(point) if metrics is None else metrics
    header = [*COLUMNS, *metrics, *TAIL]
    rows = []
    hyper = fmt_counts([r.get("hypernet_params") for r in point["results"]])
    inr = fmt_counts([r.get("inr_params") for r in point["results"]])
    for k, r in enumerate(point["results"]):
        ratio = r.get("inr_per_hypernet_param")
        peak = fmt_stat(r["peak_memory_mb"], 5) if r["peak_memory_mb"] else (r.get("memory_note") or "-")
        decode = "-" if r.get("decode_ms") is None else f"{r['decode_ms']:.2f}"
        rows.append([
            r["hypernet"], hyper[k], inr[k],
            "-" if ratio is None else f"{ratio:.4g}", fmt_stat(r["steps"], 6),
            *[fmt_stat(r["metrics"].get(m)) for m in metrics],
            fmt_stat(r["items_per_s"]), peak, decode, r["status"],
        ])
    return header, rows


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    budget = ", ".join(x for x in (f"{s['budget_steps']} steps" if s["budget_steps"] else "",
                                   f"{s['budget_minutes']} min" if s["budget_minutes"] else "") if x) or "the config's steps"
    lines = [
        f"# Hypernetwork comparison: {', '.join(s['hypernets'])} on {s['modality']}",
        "",
        f"Preset `{s['preset']}`, data `{s['data'] or 'built-in'}`, budget {budget}, seeds {s['seeds']}, "
        f"device {s.get('gpu') or s['device']}, precision {s.get('precision')}, torch {s['torch']}, inrkit {s['inrkit']}.",
        "",
        "The runs of each point differ only under `model.hypernet` (checked before training): same data, "
        "encoder and latent, INR family and size, optimiser, budget and seeds. Metrics are held-out "
        "reconstructions (mean ± std over seeds); throughput counts training items per second after "
        "warm-up; peak memory is CUDA's `max_memory_allocated` while training (not available on CPU); "
        "decode time is the median of one batch decode at the training resolution.",
        "",
    ]
    if s.get("jobs", 1) > 1:
        lines += [f"Up to {s['jobs']} runs trained at once, each in its own process, sharing the device alike: "
                  "throughput is that of a shared device (decode time was measured afterwards, alone).", ""]
    for point in report["points"]:
        if point["label"]:
            lines += [f"## {point['label']}", ""]
        header, rows = table_rows(point)
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
        lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        lines.append("")
    files = report.get("files") or {}
    if files.get("reconstructions"):
        lines += [f"![reconstructions]({files['reconstructions']})", ""]
    if files.get("scaling_plot"):
        lines += [f"![scaling]({files['scaling_plot']})", ""]
    return "\n".join(lines)


def rich_tables(report: dict[str, Any], max_metrics: int = 3) -> list:
    """One rich Table per point (the first ``max_metrics`` metrics; compare.md has them all)."""
    from rich.table import Table

    out = []
    for point in report["points"]:
        header, rows = table_rows(point, metric_names(point)[:max_metrics])
        title = f"{report['settings']['modality']}" + (f" — {point['label']}" if point["label"] else "")
        table = Table(title=title)
        for i, col in enumerate(header):
            table.add_column(col, justify="left" if i == 0 or col == "status" else "right")
        for row in rows:
            table.add_row(*row)
        out.append(table)
    return out


def _render_of(out: Path, row: dict[str, Any], stem: str) -> Path | None:
    for run in row["runs"]:
        if run["status"] != "ok" or not run.get("run_dir"):
            continue
        for rel in run.get("renders") or []:
            if Path(rel).name == f"{stem}.png":
                path = out / run["run_dir"] / rel
                if path.exists():
                    return path
    return None


def reconstruction_figure(report: dict[str, Any], out: Path, path: Path) -> Path | None:
    """One column per point: its held-out targets on top, then each hypernetwork's reconstructions
    (first seed), as the domain rendered them."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = report["points"]
    names = report["settings"]["hypernets"]
    targets = [next((p for r in point["results"] if (p := _render_of(out, r, "targets")) is not None), None)
               for point in points]
    first = next((t for t in targets if t is not None), None)
    if first is None:
        return None
    h, w = plt.imread(first).shape[:2]
    width = min(4.0, max(1.6, w / 60))
    height = width * h / w + 0.35  # room for each panel's title
    fig, axes = plt.subplots(1 + len(names), len(points), figsize=(width * len(points) + 0.2, height * (1 + len(names)) + 0.2),
                             squeeze=False)
    for col, (point, target) in enumerate(zip(points, targets)):
        rows = {r["hypernet"]: r for r in point["results"]}
        panels = [("targets", target, "ok")] + [
            (n, _render_of(out, rows[n], "reconstructions"), rows[n]["status"]) for n in names]
        for row, (label, png, status) in enumerate(panels):
            ax = axes[row, col]
            ax.set_axis_off()
            title = label if not point["label"] else (f"{label} · {point['label']}" if row == 0 else label)
            ax.set_title(title, loc="left", fontsize=8)
            if png is None:
                ax.text(0.5, 0.5, OUTCOMES.get(status, f"no reconstruction ({status})"),
                        ha="center", va="center", transform=ax.transAxes, fontsize=8)
            else:
                img = plt.imread(png)
                ax.imshow(img, cmap="gray" if img.ndim == 2 else None, interpolation="nearest")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def scaling_figure(report: dict[str, Any], path: Path) -> Path:
    """Log-log: hypernetwork parameters and training peak memory against INR parameters."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = report["settings"]["hypernets"]
    any_memory = False
    xs_all = []
    for i, name in enumerate(names):
        color = f"C{i}"
        rows = [r for p in report["points"] for r in p["results"] if r["hypernet"] == name]
        pts = sorted((r["inr_params"], r) for r in rows if r.get("inr_params"))
        xs_all += [x for x, _ in pts]
        ok = [(x, r) for x, r in pts if r["status"] == "ok"]
        counted = [(x, r["hypernet_params"]) for x, r in pts if r.get("hypernet_params")]
        if counted:
            ax_p.plot(*zip(*counted), "o-", color=color, label=name)
        mem = [(x, r["peak_memory_mb"]["mean"]) for x, r in ok if r.get("peak_memory_mb")]
        if mem:
            any_memory = True
            ax_m.plot(*zip(*mem), "o-", color=color, label=name)
        for x, r in pts:
            if r["status"] in OUTCOMES:
                for ax in (ax_p, ax_m):
                    ax.axvline(x, color=color, ls=":", lw=1)
                ax_m.plot([], [], ls=":", color=color, label=f"{name}: {OUTCOMES[r['status']]}")
    if xs_all:
        lo, hi = min(xs_all), max(xs_all)
        ax_p.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="= INR params")
    ax_p.set(xscale="log", yscale="log", xlabel="INR parameters", ylabel="hypernetwork parameters",
             title="parameters")
    ax_p.legend(fontsize=8)
    ax_m.set(xlabel="INR parameters", ylabel="training peak memory (MiB)", title="peak memory")
    if any_memory:
        ax_m.set(xscale="log", yscale="log")
        ax_m.legend(fontsize=8)
    else:
        note = report["points"][0]["results"][0].get("memory_note") or "not measured"
        ax_m.text(0.5, 0.5, f"peak memory {note}", ha="center", va="center", transform=ax_m.transAxes)
    for ax in (ax_p, ax_m):
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_reports(report: dict[str, Any], out: Path) -> dict[str, Any]:
    """compare.md, reconstructions.png and (for sweeps) scaling.png; returns their names."""
    out = Path(out)
    files: dict[str, Any] = {"json": "compare.json", "markdown": "compare.md", "reconstructions": None, "scaling_plot": None}
    if reconstruction_figure(report, out, out / "reconstructions.png") is not None:
        files["reconstructions"] = "reconstructions.png"
    if len(report["points"]) > 1:
        scaling_figure(report, out / "scaling.png")
        files["scaling_plot"] = "scaling.png"
    report = {**report, "files": files}
    atomic_write_text(out / "compare.md", markdown(report))
    return files
