"""The rich summary of a diagnosis (the dict :func:`harness.diagnose.run_diagnose` returns)."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from harness.diagnose.matrix import VERDICTS, delegate_label

__all__ = ["render"]

_KINDS = {
    "fp32": "FP32",
    "logits+cpu-threshold": "logits + CPU threshold",
    "cpu-only": "CPU only",
    "other-head": "other head",
    "newer-runtime": "newer TFLite runtime",
    "ranked": "next fastest",
}
_STYLE = {"ok": "green", "partial": "yellow", "delegate-failed": "red", "failed": "red"}


def _num(value, fmt: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def _matrix(device: dict, delegates: list[str], heads: list[str]) -> Table:
    table = Table(
        title="Matrix: verdict vs the desktop reference of the same variant (avg latency, IoU)",
        title_justify="left",
    )
    table.add_column("head")
    for d in delegates:
        table.add_column(delegate_label(d))
    cells = {(c["head"], c["delegate"]): c for c in device["matrix"]}
    for head in heads:
        row = [head]
        for d in delegates:
            c = cells.get((head, d))
            if c is None:
                row.append("-")
                continue
            style = _STYLE.get(c["verdict"], "bold red")
            text = f"[{style}]{c['label']}[/]"
            if c["latency_ms"] is not None:
                text += f"\n{c['latency_ms']:.2f} ms"
            if c["nan"]:
                text += f"  {c['nan']} NaN/Inf"
            elif c["iou"] is not None and not c["correct"]:
                text += f"  IoU {c['iou']:.3f}"
            if c["verdict"] == "partial" and c["fallback_ops"]:
                text += "\nCPU: " + ", ".join(op.split(":")[0] for op in c["fallback_ops"])
            row.append(text)
        table.add_row(*row)
    return table


def _group(locs: list[dict]) -> list[tuple[dict, list[str]]]:
    """Localizations with the same variant, culprit and explanation, shown once."""
    groups: dict[tuple, tuple[dict, list[str]]] = {}
    for loc in locs:
        culprit = loc.get("culprit") or {}
        key = (loc["variant"], culprit.get("tensor"), loc.get("mode"), loc.get("error"))
        groups.setdefault(key, (loc, []))[1].append(delegate_label(loc["delegate"]))
    return list(groups.values())


def _localization(loc: dict, delegates: list[str]) -> Group:
    title = Text.from_markup(
        f"[bold]{loc['variant']}[/] on [bold]{', '.join(delegates)}[/]: "
        f"{VERDICTS.get(loc['verdict'], loc['verdict'])} — probes on images {loc['images']}, "
        f"{loc['tensors_compared']} tensors compared, tolerance {loc['tolerance']:g}"
    )
    parts: list = [title]
    culprit = loc.get("culprit")
    if culprit is None:
        parts.append(Text(loc.get("explanation") or loc.get("error") or "no culprit found"))
        return Group(*parts)
    parts.append(
        Text.from_markup(
            f"first diverging tensor: [bold red]{culprit['op']}[/] (op #{culprit['op_index']}), "
            f"tensor {culprit['tensor']} '{culprit['name']}'"
        )
    )
    table = Table(show_edge=False, pad_edge=False)
    for col in ("", "op", "tensor", "max |err|", "rel err", "NaN/Inf"):
        table.add_column(col, justify="right" if "err" in col or col == "NaN/Inf" else "left")
    rows = [("before", t) for t in loc["before"]] + [("culprit", culprit)]
    rows += [("after", t) for t in loc["after"]]
    for role, t in rows:
        style = "bold red" if role == "culprit" else ""
        table.add_row(
            role,
            f"{t['op']}#{t['op_index']}",
            f"{t['tensor']} {t['name'][:40]}",
            _num(t["max_abs"], ".3g"),
            _num(t["rel"], ".3g"),
            str(t["nonfinite"]),
            style=style,
        )
    if not loc["after"]:
        table.add_row("after", "-", "(the model output)", "", "", "")
    parts.append(table)
    if loc.get("explanation"):
        parts.append(Text(f"why: {loc['explanation']}"))
    return Group(*parts)


def _recommendation(rec: dict) -> Group:
    parts: list = [Text.from_markup(f"[bold green]Ship:[/] {rec['text']}")]
    instead = rec.get("instead_of")
    if instead:
        parts.append(Text(f"instead of {instead['config']} ({instead['label']})"))
    if rec.get("alternatives"):
        table = Table(show_edge=False, pad_edge=False)
        for col in ("alternative", "configuration", "verdict", "avg ms", "vs ship", "IoU", "note"):
            table.add_column(
                col, justify="right" if col in ("avg ms", "vs ship", "IoU") else "left"
            )
        for a in rec["alternatives"]:
            kind = _KINDS.get(a["kind"], a["kind"])
            if not a["measured"]:
                table.add_row(kind, "-", "not measured", "", "", "", a["note"])
                continue
            delta = "-" if a["delta_pct"] is None else f"{a['delta_pct']:+.0f}%"
            style = _STYLE.get(a["verdict"], "bold red")
            table.add_row(
                kind,
                a["config"],
                f"[{style}]{a['label']}[/]",
                _num(a["latency_ms"], ".2f"),
                delta,
                _num(a["iou"], ".3f"),
                a["note"],
            )
        parts.append(table)
    return Group(*parts)


def render(diagnosis: dict, console: Console) -> None:
    heads = list(dict.fromkeys(diagnosis["heads"]))
    largest = diagnosis.get("largest_logit")
    for device in diagnosis["devices"]:
        where = f"{device['model']} ({device.get('soc') or '?'}, {device.get('gpu') or '?'})"
        generation = device.get("gpu_delegate") or "unknown"
        if device["virtual"]:
            faults = ", ".join(device["emulated_faults"]) or "none"
            where += f" — virtual phone, GPU delegate {generation}, other faults: {faults}"
        header = [
            Text.from_markup(f"[bold]{diagnosis['model']}[/] on [bold]{where}[/]"),
            Text(
                f"run {diagnosis['run_id']} in {diagnosis['store']}; eval set "
                f"{diagnosis['eval_set']['name']} ({diagnosis['eval_set']['n']} images)"
            ),
        ]
        if largest:
            rel = ">" if largest["exposed"] else "<="
            header.append(
                Text(
                    f"largest logit measured (softmax input, desktop): {largest['value']:.2f} "
                    f"{rel} ln(65504) = {largest['limit']:.2f} ({largest['over']} of "
                    f"{largest['of']} values past it; {largest['variant']} {largest['op']})"
                )
            )
        style = "green" if not device["failures"] else "red"
        header.append(Text.from_markup(f"[bold {style}]{device['summary']}[/]"))
        console.print(Panel(Group(*header), title="harness diagnose", title_align="left"))
        console.print(_matrix(device, diagnosis["delegates"], heads))
        for loc, delegates in _group(device["localizations"]):
            console.print(
                Panel(_localization(loc, delegates), title="Localization", title_align="left")
            )
        if diagnosis.get("exposure_summary"):
            console.print("[bold]Exposure[/] (desktop, whole eval set)")
            for line in diagnosis["exposure_summary"]:
                console.print(f"  - {line}", highlight=False)
        console.print(
            Panel(
                _recommendation(device["recommendation"]),
                title="Recommendation",
                title_align="left",
            )
        )
        if device.get("remedies"):
            console.print(f"[bold]What fixes it[/] (sources, GPU delegate {generation}):")
            for line in device["remedies"]:
                console.print(f"  - {line}", highlight=False)
        for note in device["notes"]:
            console.print(f"[yellow]note:[/] {note}", highlight=False)
    console.print(
        f"stored with run {diagnosis['run_id']} in {diagnosis['store']} (harness report shows it)",
        highlight=False,
    )
