"""Phone state before measuring, recorded per run with warnings; --require-cool waits."""

from __future__ import annotations

import threading
from pathlib import Path

from harness.bench.run import BenchOptions, run_bench
from harness.store import Store


def _opts(model, phone, store, **kw) -> BenchOptions:
    base = dict(
        model=str(model),
        devices=(phone.serial,),
        store=str(store),
        runs=2,
        warmup=0,
        repeats=1,
        images=1,
        variants="sigmoid-fp32",
        delegates="cpu",
    )
    base.update(kw)
    return BenchOptions(**base)


def _set_temp(phone, celsius: float) -> None:
    zone = Path(phone.root) / "sys/class/thermal/thermal_zone0/temp"
    zone.write_text(f"{round(celsius * 1000)}\n")


def test_hot_busy_phone_warns_records_and_require_cool_waits(bench_model, start_phone, tmp_path):
    phone = start_phone("SM-G973F")
    busy = " 4321 u0_a123      10 -10 5.1G 210M 120M S 187.0   3.1  12:01.22 com.example.game\n"
    (Path(phone.root) / ".harness/top").write_text(busy)
    _set_temp(phone, 52.0)
    warned: list[str] = []
    cooler = threading.Timer(3.0, _set_temp, args=(phone, 30.0))  # the phone cools down
    cooler.start()
    try:
        out = run_bench(
            _opts(bench_model, phone, tmp_path / "r.db", require_cool=45.0, cool_wait=60),
            on_warning=warned.append,
        )
    finally:
        cooler.cancel()
    assert any("hot: BIG at 52.0°C" in w for w in warned), warned
    assert any("busy: com.example.game 187%" in w for w in warned), warned
    assert all(w.startswith(phone.serial + ": ") for w in warned)
    (cell,) = out.cells
    assert cell.measured and cell.thermal["before"]["cool_wait_s"] >= 2.0  # it waited for the timer
    assert max(cell.thermal["before"]["zones"].values()) < 45.0
    with Store(tmp_path / "r.db") as store:
        (device,) = store.devices(out.run_id)
    recorded = device["info"]["state"]
    assert recorded["hottest_c"] == 52.0 and recorded["busy"][0]["pid"] == 4321
    assert recorded["screen_on"] is True and recorded["charging"] is True
    assert any(w.startswith("hot") for w in device["info"]["state_warnings"])


def test_require_cool_gives_up_after_cool_wait(bench_model, start_phone, tmp_path):
    phone = start_phone("SM-G973F")
    out = run_bench(_opts(bench_model, phone, tmp_path / "r.db", require_cool=20.0, cool_wait=0))
    (cell,) = out.cells
    assert not cell.measured and out.status == "partial"
    assert cell.reason == "phone did not cool below 20°C within 0s (hottest: BIG at 38.0°C)"
