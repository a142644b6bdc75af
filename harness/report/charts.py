"""Charts as ``data:`` PNG URIs: latency bars with spread, accuracy heatmaps (matplotlib, Agg).

No pyplot and no global backend switch: each chart is its own ``Figure`` on an Agg canvas, and
PNG metadata (the matplotlib version) is left out so the same data gives the same bytes.
"""

from __future__ import annotations

import base64
import io

import numpy as np

from harness.cell import METRICS
from harness.report import formatting as fmt
from harness.report.data import DeviceData, ReportCell, RunData
from harness.runner.flags import Delegate

DPI = 96
_PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#9d755d")


def _own_color(delegate: str) -> str:
    found = Delegate.lookup(delegate)
    return found.color if found else ""


def delegate_color(delegate: str, delegates: list[str]) -> str:
    """The delegate's own colour (:attr:`Delegate.color`), else the next free one."""
    if own := _own_color(delegate):
        return own
    others = [d for d in delegates if not _own_color(d)]
    return _PALETTE[(others.index(delegate) + 3) % len(_PALETTE)]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def plain(text: str) -> str:
    """Text from devices and models, safe from matplotlib's mathtext (``$...$``)."""
    return str(text).replace("$", r"\$")


def device_title(device: DeviceData) -> str:
    text = plain(f"{device.model}  {device.shown}")
    return text + "  — VIRTUAL" if device.virtual else text


def latency_chart(device: DeviceData, cells: list[ReportCell], delegates: list[str]) -> str | None:
    """Horizontal bars per variant x delegate: mean (bar), ±std (black), min-max (grey)."""
    if not cells:
        return None
    cells = sorted(cells, key=lambda c: (c.variant_id, c.delegate))
    n = len(cells)
    fig = _figure(8.0, 0.34 * n + 1.3)
    ax = fig.add_subplot(1, 1, 1)
    ys = np.arange(n)[::-1]
    top = max([c.latency.max_ms or c.latency.avg_ms or 0.0 for c in cells] + [1e-3])
    for y, cell in zip(ys, cells, strict=True):
        avg = cell.latency.avg_ms
        if not cell.measured or avg is None:
            text = "failed" if not cell.measured else "not measured"
            ax.text(top * 0.01, y, text, va="center", ha="left", color="#c0392b", fontsize=8)
            continue
        color = delegate_color(cell.delegate, delegates)
        ax.barh(y, avg, height=0.62, color=color, alpha=0.85)
        if cell.latency.min_ms is not None and cell.latency.max_ms is not None:
            ax.plot(
                [cell.latency.min_ms, cell.latency.max_ms],
                [y, y],
                color="#888888",
                lw=1,
                marker="|",
                ms=8,
            )
        if cell.latency.std_ms:
            # ±std, but never left of the fastest run (noisy sub-ms cells have std > mean)
            low = min(cell.latency.std_ms, max(avg - (cell.latency.min_ms or 0.0), 0.0))
            ax.errorbar(
                avg, y, xerr=[[low], [cell.latency.std_ms]], color="black", lw=1.2, capsize=3
            )
        spread = (
            f"  spread {fmt.pct(cell.latency.spread_pct, signed=False)}"
            if cell.latency.spread_pct
            else ""
        )
        label = f" {fmt.ms(avg)} ms{spread}"
        ax.text(max(avg, cell.latency.max_ms or 0), y, label, va="center", ha="left", fontsize=8)
    ax.set_yticks(ys)
    ax.set_yticklabels([plain(f"{c.variant_id} · {c.delegate}") for c in cells], fontsize=8)
    ax.set_xlim(0, top * 1.35)
    ax.set_ylim(-0.6, n - 0.4)
    ax.set_xlabel(
        "latency (ms): bar = mean, black = ±std (clipped at the min), grey = min–max", fontsize=8
    )
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="x", color="#dddddd", lw=0.6)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_title(device_title(device), fontsize=10, loc="left")
    fig.tight_layout()
    return _png(fig)


def _column_label(cell: ReportCell) -> str:
    virtual = "VIRTUAL" if cell.phone and cell.phone.virtual else cell.shown_serial
    return plain(f"{cell.device_model}\n{virtual}\n{cell.delegate}")


def accuracy_heatmap(run: RunData, metric: str = "iou_ref") -> str | None:
    """IoU per variant (rows) x device and delegate (columns); failed cells say so."""
    cells = [c for c in run.cells]
    value_of = METRICS[metric]
    if not any(value_of(c) is not None for c in cells):
        return None
    variants = run.variant_ids
    firsts = {(c.device_model, c.shown_serial, c.delegate): c for c in reversed(cells)}
    columns = sorted(firsts)
    index = {(c.variant_id, c.shown_serial, c.delegate): c for c in cells}
    values = np.full((len(variants), len(columns)), np.nan)
    for i, variant in enumerate(variants):
        for j, (_, serial, delegate) in enumerate(columns):
            cell = index.get((variant, serial, delegate))
            value = value_of(cell) if cell is not None and cell.measured else None
            if value is not None:
                values[i, j] = value
    low = 0.8 if metric == "iou_ref" else 0.5
    fig = _figure(max(4.5, 0.95 * len(columns) + 2.2), 0.36 * len(variants) + 1.7)
    ax = fig.add_subplot(1, 1, 1)
    cmap = _cmap()
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=low, vmax=1.0, aspect="auto")
    for i, variant in enumerate(variants):
        for j, (_, serial, delegate) in enumerate(columns):
            cell = index.get((variant, serial, delegate))
            if cell is None:
                text = "—"
            elif not cell.measured:
                text = "failed"
            else:
                text = fmt.iou(value_of(cell))
                if cell.accuracy.reference.nonfinite:
                    text += "\nNaN/Inf"
            value = values[i, j]
            dark = not np.isnan(value) and _is_dark(cmap((value - low) / (1.0 - low)))
            color = "white" if dark else "#111111"
            ax.text(j, i, text, ha="center", va="center", fontsize=9, color=color)
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels([_column_label(firsts[c]) for c in columns], fontsize=7)
    ax.set_yticks(range(len(variants)))
    ax.set_yticklabels([plain(v) for v in variants], fontsize=8)
    ax.tick_params(length=0)
    what = "IoU vs desktop reference" if metric == "iou_ref" else "IoU vs ground truth"
    ax.set_title(f"{what} (colour scale {low:g}–1; grey = not measured)", fontsize=9, loc="left")
    bar = fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    bar.ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def _is_dark(rgba) -> bool:
    r, g, b = rgba[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b < 0.5


def _cmap():
    from matplotlib import colormaps

    cmap = colormaps["RdYlGn"].with_extremes(bad="#d9d9d9")
    return cmap
