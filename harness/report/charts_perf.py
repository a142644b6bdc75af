"""Sustained-run chart: latency vs time above, temperature and CPU frequency vs time below
(matplotlib Agg, same deterministic PNG rules as :mod:`harness.report.charts`)."""

from __future__ import annotations

from harness.report.charts import _figure, _png, plain


def sustain_chart(sustained) -> str | None:  # noqa: ANN001 - sections_perf.Sustained
    samples = [s for s in sustained.samples if s.get("t_s") is not None]
    if not samples:
        return None
    t = [s["t_s"] for s in samples]
    fig = _figure(8.0, 4.6)
    top = fig.add_subplot(2, 1, 1)
    lat = [(x, s["latency_ms"]) for x, s in zip(t, samples, strict=True) if s["latency_ms"]]
    if lat:
        top.plot([x for x, _ in lat], [y for _, y in lat], color="#4c78a8", lw=1.2)
    top.set_ylabel("latency ms")
    title = plain(sustained.cell.label)
    if sustained.summary.get("emulated"):
        title += "  — VIRTUAL, emulated heating"
    top.set_title(title, fontsize=9)
    top.grid(alpha=0.3)
    bottom = fig.add_subplot(2, 1, 2, sharex=top)
    temp = [(x, s["temp_c"]) for x, s in zip(t, samples, strict=True) if s["temp_c"] is not None]
    if temp:
        bottom.plot([x for x, _ in temp], [y for _, y in temp], color="#e45756", lw=1.2)
    bottom.set_ylabel("hottest zone °C", color="#e45756")
    bottom.set_xlabel("seconds")
    bottom.grid(alpha=0.3)
    freq = [(x, s["cpu_khz"]) for x, s in zip(t, samples, strict=True) if s["cpu_khz"]]
    if freq:
        right = bottom.twinx()
        right.plot([x for x, _ in freq], [y / 1000 for _, y in freq], color="#54a24b", lw=1.0)
        right.set_ylabel("max CPU MHz", color="#54a24b")
    fig.tight_layout()
    return _png(fig)
