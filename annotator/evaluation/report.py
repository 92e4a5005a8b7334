"""Presenting evaluation results: a terminal table, a JSON document, a matplotlib plot."""

from __future__ import annotations

import json
from pathlib import Path

from annotator.errors import AnnotatorError
from annotator.evaluation.clicks import IOU_AT, THRESHOLDS, ClicksReport
from annotator.evaluation.labels import LabelsReport


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in pairs)

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def clicks_table(report: ClicksReport) -> str:
    """NoC@85, NoC@90, objects never reaching 90%, mean IoU after 1/3/5 clicks."""
    s = report.summary()
    pcts = [round(t * 100) for t in THRESHOLDS]
    header = ["dataset", "objects", *(f"NoC@{p}" for p in pcts), f"never@{pcts[-1]}"]
    header += [f"mIoU@{k}" for k in IOU_AT]
    row = [report.dataset, str(s["objects"]), *(_num(s[f"NoC@{p}"]) for p in pcts)]
    row += [str(s[f"not_reached@{pcts[-1]}"])] + [_num(s[f"mIoU@{k}"], 3) for k in IOU_AT]
    foot = (
        f"NoC@t: mean clicks to reach IoU t ({report.max_clicks} when never reached); "
        f"never@{pcts[-1]}: objects below {pcts[-1]}% after {report.max_clicks} clicks"
    )
    return _table(header, [row]) + "\n" + foot


def labels_table(report: LabelsReport, sizes: dict[str, int] | None = None) -> str:
    """Top-1 / top-k accuracy per region head and mask source, for each label set."""
    sizes = sizes or {}
    header = ["head", "mask"]
    for name in report.label_sets:
        size = f" ({sizes[name]})" if name in sizes else ""
        header += [f"{name}{size} top-1", f"top-{report.top_k}"]
    rows = []
    for row in report.rows():
        cells = [str(row["head"]), str(row["mask"])]
        for name in report.label_sets:
            cells += [_pct(row[f"{name} top-1"]), _pct(row[f"{name} top-{report.top_k}"])]
        rows.append(cells)
    lines = [f"{report.dataset}: {len(report.objects)} objects", _table(header, rows)]
    miou = report.click_miou()
    if miou is not None:
        lines.append(f"mean IoU of the 1-click masks: {miou:.3f}")
    return "\n".join(lines)


def clicks_json(report: ClicksReport) -> dict:
    return {
        "command": "clicks",
        "dataset": report.dataset,
        "max_clicks": report.max_clicks,
        "summary": report.summary(),
        "mean_iou_curve": report.mean_iou_curve(),
        "objects": [
            {
                "name": o.name,
                **{f"NoC@{round(t * 100)}": o.noc(t) for t in THRESHOLDS},
                "ious": [round(v, 6) for v in o.ious],
                "clicks": [[c.x, c.y, int(c.positive)] for c in o.clicks],
            }
            for o in report.objects
        ],
        "notes": report.notes,
    }


def labels_json(report: LabelsReport, sizes: dict[str, int] | None = None) -> dict:
    return {
        "command": "labels",
        "dataset": report.dataset,
        "heads": report.heads,
        "label_sets": {name: (sizes or {}).get(name) for name in report.label_sets},
        "top_k": report.top_k,
        "results": report.rows(),
        "click_mIoU": report.click_miou(),
        "objects": [
            {
                "name": o.name,
                "category": o.category,
                "click_iou": o.click_iou,
                "predictions": {"/".join(k): v for k, v in o.predictions.items()},
            }
            for o in report.objects
        ],
        "notes": report.notes,
    }


def write_json(document: dict, path: Path) -> None:
    """Write the results; a missing folder or unwritable file is the user's to fix."""
    try:
        Path(path).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    except OSError as error:
        raise AnnotatorError(f"{path}: cannot write the JSON results ({error.strerror})") from None


def _figure():
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise AnnotatorError("--plot needs matplotlib (pip install 'annotator[plot]')") from None
    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    FigureCanvasAgg(figure)  # the Agg backend, without touching pyplot's global state
    return figure


def _save(figure, path: Path) -> None:
    try:
        figure.savefig(path)
    except OSError as error:
        raise AnnotatorError(f"{path}: cannot write the plot ({error.strerror})") from None


def plot_clicks(report: ClicksReport, path: Path) -> None:
    """Mean IoU against the number of clicks, with the NoC thresholds."""
    figure = _figure()
    axes = figure.add_subplot()
    curve = report.mean_iou_curve()
    axes.plot(
        range(1, len(curve) + 1),
        curve,
        marker="o",
        label=f"{report.dataset} ({len(report.objects)} objects)",
    )
    for t in THRESHOLDS:
        axes.axhline(t, color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("clicks")
    axes.set_ylabel("mean IoU")
    axes.set_xlim(1, max(report.max_clicks, 2))
    axes.set_ylim(0, 1)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    _save(figure, path)


def plot_labels(report: LabelsReport, path: Path) -> None:
    """Top-1 accuracy per (head, mask source), one bar group per label set."""
    import numpy as np

    figure = _figure()
    axes = figure.add_subplot()
    rows = report.rows()
    width = 0.8 / max(len(rows), 1)
    x = np.arange(len(report.label_sets))
    for i, row in enumerate(rows):
        values = [row[f"{name} top-1"] or 0.0 for name in report.label_sets]
        axes.bar(x + i * width, values, width, label=f"{row['head']}, {row['mask']}")
    axes.set_xticks(x + width * (len(rows) - 1) / 2, report.label_sets)
    axes.set_ylabel("top-1 accuracy")
    axes.set_ylim(0, 1)
    axes.legend(fontsize="small")
    figure.tight_layout()
    _save(figure, path)
