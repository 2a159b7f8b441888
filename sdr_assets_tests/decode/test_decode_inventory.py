"""decode.inventory: usual intervals, the inventory as of a window, new and missing devices."""

from sdr_assets.decode.inventory import alerts, build_inventory, usual_interval_s, window_sightings
from sdr_assets.records import NS_PER_S
from sdr_assets.store.messages import DeviceTotals, MessageRecord

S = NS_PER_S
T0 = 1_700_000_000 * S


def _msg(t_ns: int, model: str, device_id: str | None = "1", snr_db: float = 10.0) -> MessageRecord:
    return MessageRecord(
        t_ns,
        t_ns + S // 10,
        433.9e6,
        None,
        433.89e6,
        433.91e6,
        model,
        device_id,
        None,
        "ASK",
        None,
        snr_db,
        None,
        {"model": model},
    )


def test_repeats_of_one_transmission_are_not_intervals():
    times = [T0 + k * 30 * S + r * S // 4 for k in range(4) for r in range(3)]  # 3 repeats every 30 s
    assert usual_interval_s(times) == 29.5
    assert usual_interval_s(times[:4]) is None  # one interval is not a habit yet
    assert usual_interval_s([T0 + k * S // 4 for k in range(10)]) is None  # repeats only


def _inventory(messages, as_of_ns):
    sightings = window_sightings("roof", "w", messages)
    totals = [
        DeviceTotals(s.model, s.device_id, s.channel, min(s.times_ns), max(s.times_ns), len(s.times_ns))
        for s in sightings
    ]
    return build_inventory("roof", totals, sightings, as_of_ns)


def test_inventory_medians_and_devices_without_id():
    msgs = [_msg(T0 + k * 10 * S, "A", snr_db=float(k)) for k in range(5)] + [_msg(T0 + 5 * S, "Remote", None)]
    rows = {r.model: r for r in _inventory(msgs, T0 + 60 * S)}
    a, remote = rows["A"], rows["Remote"]
    assert (a.n_messages, a.median_snr_db, a.usual_interval_s, a.median_freq_hz) == (5, 2.0, 10.0, 433.9e6)
    assert (a.first_seen_ns, a.last_seen_ns, a.sensor) == (T0, T0 + 40 * S, "roof")
    assert remote.device_id == "" and remote.name() == "Remote" and remote.usual_interval_s is None


def test_missing_once_in_the_window_where_it_falls_due_and_new_only_after_a_baseline():
    msgs = [_msg(T0 + k * 10 * S, "A") for k in range(6)]  # last at +50 s, every 10 s: due at +80 s
    rows = _inventory(msgs, T0 + 120 * S)
    assert alerts(rows, T0, T0 + 60 * S) == []  # first window: the baseline, nothing new
    (gone,) = alerts(rows, T0 + 60 * S, T0 + 120 * S)
    assert gone.kind == "missing" and gone.due_ns == T0 + 80 * S
    assert "device missing on sensor roof: A id 1 last seen" in gone.line() and "every 10.0 s" in gone.line()
    assert alerts(rows, T0 + 120 * S, T0 + 180 * S, missing_after=3.0) == []  # reported once
    assert [a.kind for a in alerts(rows, T0 + 120 * S, T0 + 180 * S, missing_after=10.0)] == ["missing"]

    later = _inventory(msgs + [_msg(T0 + 130 * S, "B", "7")], T0 + 180 * S)
    (new,) = [a for a in alerts(later, T0 + 120 * S, T0 + 180 * S) if a.kind == "new"]
    assert new.device.model == "B" and new.line().startswith("new device on sensor roof: B id 7 (first seen ")
