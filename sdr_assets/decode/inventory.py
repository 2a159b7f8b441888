"""The device inventory of a sensor: every device rtl_433 has heard, and which are new or missing.

A device is (model, id, channel) as rtl_433 prints them ('' where a model has no id or channel).
Each window's messages become one *sighting* per device (its message times, SNRs and
frequencies; ``store.messages.device_sightings``, kept when the window itself is evicted), so
re-materialising a window replaces its sightings and never counts a message twice. The
inventory "as of" a window's end is derived from the sightings of that window and the ones
before it:

- first and last seen, message count: over the device's whole history;
- median SNR and frequency: over its last ``RECENT_MESSAGES`` messages (of the last
  ``LOOKBACK_S``);
- usual interval: the median gap between its transmissions, a gap shorter than ``REPEAT_S``
  being a repeat of one transmission (sensors send each reading 2-10 times within a second);
  known once it has ``MIN_INTERVALS`` such gaps.

Alerts for the window [w0, w1):

- **new**: first seen in the window, while the sensor had heard other devices before w0 (the
  first window a sensor decodes is its baseline: nothing is "new" then);
- **missing**: last seen at L with usual interval u, and L + ``missing_after`` x u falls in the
  window: a device is reported missing once, in the window where it went silent for too long.
  A device without a usual interval yet is never reported missing.
"""

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sdr_assets.records import NS_PER_S, utc_iso
from sdr_assets.store import messages as store
from sdr_assets.store.messages import DeviceRow, DeviceTotals, MessageRecord, Sighting

REPEAT_S = 2.0
MIN_INTERVALS = 2
RECENT_MESSAGES = 256
LOOKBACK_S = 30 * 86400.0
DEFAULT_MISSING_AFTER = 3.0


@dataclass(frozen=True)
class DeviceAlert:
    kind: str  # "new" | "missing"
    device: DeviceRow  # as of the window's end
    due_ns: int | None = None  # missing: when it became overdue

    def name(self) -> str:
        return self.device.name()

    def line(self) -> str:
        d = self.device
        if self.kind == "new":
            return (
                f"new device on sensor {d.sensor}: {d.name()} "
                f"(first seen {utc_iso(d.first_seen_ns, sep=' ', suffix=' UTC')})"
            )
        return (
            f"device missing on sensor {d.sensor}: {d.name()} "
            f"last seen {utc_iso(d.last_seen_ns, sep=' ', suffix=' UTC')}, "
            f"usually every {d.usual_interval_s:.1f} s (silent for more than "
            f"{(self.due_ns - d.last_seen_ns) / NS_PER_S:.0f} s by {utc_iso(self.due_ns, sep=' ', suffix=' UTC')})"
        )


def window_sightings(sensor: str, partition_key: str, messages: Iterable[MessageRecord]) -> list[Sighting]:
    """One Sighting per device heard in the window's messages."""
    by_device: dict[tuple[str, str, str], list[MessageRecord]] = {}
    for m in messages:
        by_device.setdefault(m.device_key, []).append(m)
    out = []
    for (model, device_id, channel), msgs in by_device.items():
        msgs.sort(key=lambda m: m.t_start_ns)
        out.append(
            Sighting(
                sensor,
                partition_key,
                model,
                device_id,
                channel,
                tuple(m.t_start_ns for m in msgs),
                tuple(m.snr_db for m in msgs),
                tuple(m.freq_hz for m in msgs),
            )
        )
    return out


def usual_interval_s(times_ns: Sequence[int]) -> float | None:
    """Median gap between transmissions (gaps under REPEAT_S are repeats), None below MIN_INTERVALS."""
    ts = sorted(times_ns)
    gaps = [(b - a) / NS_PER_S for a, b in zip(ts, ts[1:]) if (b - a) / NS_PER_S >= REPEAT_S]
    return statistics.median(gaps) if len(gaps) >= MIN_INTERVALS else None


def _median(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else None


def build_inventory(
    sensor: str, totals: Sequence[DeviceTotals], recent: Sequence[Sighting], as_of_ns: int
) -> list[DeviceRow]:
    """The inventory rows (see the module doc) from each device's totals and recent sightings."""
    recent_by: dict[tuple[str, str, str], list[tuple[int, float | None, float | None]]] = {}
    for s in recent:
        recent_by.setdefault(s.device_key, []).extend(zip(s.times_ns, s.snr_db, s.freq_hz))
    rows = []
    for t in totals:
        obs = sorted(recent_by.get(t.device_key, []))[-RECENT_MESSAGES:]
        rows.append(
            DeviceRow(
                t.model,
                t.device_id,
                t.channel,
                t.first_seen_ns,
                t.last_seen_ns,
                t.n_messages,
                sensor=sensor,
                median_snr_db=_median(o[1] for o in obs),
                median_freq_hz=_median(o[2] for o in obs),
                usual_interval_s=usual_interval_s([o[0] for o in obs]),
                as_of_ns=as_of_ns,
            )
        )
    return rows


def alerts(
    rows: Sequence[DeviceRow], w0_ns: int, w1_ns: int, missing_after: float = DEFAULT_MISSING_AFTER
) -> list[DeviceAlert]:
    """New and missing devices in the window [w0_ns, w1_ns) (see the module doc)."""
    baseline = any(r.first_seen_ns < w0_ns for r in rows)
    out = []
    for r in rows:
        if baseline and w0_ns <= r.first_seen_ns < w1_ns:
            out.append(DeviceAlert("new", r))
        due = missing_due_ns(r, missing_after)
        if due is not None and w0_ns <= due < w1_ns:
            out.append(DeviceAlert("missing", r, due))
    return out


def missing_due_ns(row: DeviceRow, missing_after: float = DEFAULT_MISSING_AFTER) -> int | None:
    """When the device becomes missing (last seen + ``missing_after`` x its usual interval);
    None while it has no usual interval."""
    if row.usual_interval_s is None:
        return None
    return row.last_seen_ns + int(round(missing_after * row.usual_interval_s * NS_PER_S))


@dataclass(frozen=True)
class DeviceState:
    """A device of the stored inventory with its flags as of the inventory's time:
    ``new``: first heard in the window the inventory was last updated for (while the sensor had
    heard others before it); ``missing``: silent for longer than ``missing_after`` x its usual
    interval by then (``due_ns``: since when)."""

    device: DeviceRow
    new: bool
    missing: bool
    due_ns: int | None


def device_states(
    rows: Sequence[DeviceRow], w0_ns: int | None, as_of_ns: int, missing_after: float = DEFAULT_MISSING_AFTER
) -> list[DeviceState]:
    """The flags of each inventory row (see :class:`DeviceState`); ``w0_ns``: the start of the
    window the inventory is as of (None when unknown: nothing is flagged new)."""
    baseline = w0_ns is not None and any(r.first_seen_ns < w0_ns for r in rows)
    out = []
    for r in rows:
        due = missing_due_ns(r, missing_after)
        out.append(
            DeviceState(r, baseline and w0_ns <= r.first_seen_ns < as_of_ns, due is not None and due <= as_of_ns, due)
        )
    return out


@dataclass(frozen=True)
class InventoryUpdate:
    rows: list[DeviceRow]  # the inventory as of the window's end
    alerts: list[DeviceAlert]
    n_sightings: int  # devices heard in this window
    stored: bool  # False when a newer window's inventory is already stored (a backfill)


def update_inventory(
    conn, sensor: str, partition_key: str, w0_ns: int, w1_ns: int, missing_after: float = DEFAULT_MISSING_AFTER
) -> InventoryUpdate:
    """Fold the window's decoded messages into the sensor's sightings, derive the inventory as
    of the window's end and its alerts; store the inventory unless a newer one is stored."""
    seen = window_sightings(sensor, partition_key, store.messages(conn, partition_key))
    store.replace_sightings(conn, sensor, partition_key, seen)
    totals = store.device_totals(conn, sensor, before_ns=w1_ns)
    recent = store.sightings(conn, sensor, before_ns=w1_ns, since_ns=w1_ns - int(LOOKBACK_S * NS_PER_S))
    rows = build_inventory(sensor, totals, recent, as_of_ns=w1_ns)
    newest = max((r.as_of_ns for r in store.inventory(conn, sensor)), default=None)
    stored = newest is None or newest <= w1_ns
    if stored:
        store.replace_inventory(conn, sensor, rows)
    return InventoryUpdate(rows, alerts(rows, w0_ns, w1_ns, missing_after), len(seen), stored)
