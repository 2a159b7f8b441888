"""The energy detector's bursts of each partition in the analysis DB, so it runs once per window.

- ``energy_runs``: one row per partition the detector has run over: when, how many bursts, its
  seconds of CPU and the coarse geometry it used (``dsp.detect.SegmentDetector.describe``);
- ``energy_bursts``: its bursts in absolute time and Hz, with their SNR and peak level.

``spectrograms`` writes both while it renders (the detector reuses the spectrogram's STFT);
``training_labels`` (its energy fallback) and ``detections`` (until a model exists) read them.
A run older than the window's last load is stale: :meth:`BurstQueries.energy_bursts` says so.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sdr_assets.records import TimeFreqBox


@dataclass(frozen=True)
class EnergyBurstRow:
    """One burst: absolute ns and Hz, its mean SNR over the detected cells and its peak (dB)."""

    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    snr_db: float
    peak_db: float

    def box(self, label: str, confidence: float) -> TimeFreqBox:
        return TimeFreqBox(self.t_start_ns, self.t_end_ns, self.freq_lower_hz, self.freq_upper_hz, label, confidence)


@dataclass(frozen=True)
class EnergyRun:
    partition_key: str
    detected_ns: int
    n_bursts: int
    seconds: float  # CPU seconds of the detector (its share of a shared STFT excluded)
    geometry: str  # e.g. "spectrogram STFT 640/640 pooled 2 bins x 5 columns"


_COLS = "t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, snr_db, peak_db"


class BurstQueries:
    """The energy_runs and energy_bursts tables, as methods of the analysis DB (mixed in)."""

    def replace_energy_bursts(self, run: EnergyRun, rows: Sequence[EnergyBurstRow]) -> None:
        """The partition's bursts become ``rows``, recorded as ``run``, in one transaction."""
        key = run.partition_key
        with self.transaction(f"writing the energy bursts of {key}") as conn:
            conn.execute("DELETE FROM energy_bursts WHERE partition_key = ?", (key,))
            conn.execute("DELETE FROM energy_runs WHERE partition_key = ?", (key,))
            conn.execute(
                "INSERT INTO energy_runs (partition_key, detected_ns, n_bursts, seconds, geometry) VALUES (?,?,?,?,?)",
                (key, run.detected_ns, run.n_bursts, run.seconds, run.geometry),
            )
            conn.executemany(
                f"INSERT INTO energy_bursts (partition_key, {_COLS}) VALUES (?,?,?,?,?,?,?)",
                [(key, r.t_start_ns, r.t_end_ns, r.freq_lower_hz, r.freq_upper_hz, r.snr_db, r.peak_db) for r in rows],
            )

    def energy_run(self, partition_key: str) -> EnergyRun | None:
        row = self.conn.execute(
            "SELECT partition_key, detected_ns, n_bursts, seconds, geometry FROM energy_runs WHERE partition_key = ?",
            (partition_key,),
        ).fetchone()
        return None if row is None else EnergyRun(*row)

    def energy_bursts(self, partition_key: str) -> list[EnergyBurstRow] | None:
        """The stored bursts in time order; None when the detector has not run over the
        partition's current window (never, or before the window was last loaded)."""
        run = self.energy_run(partition_key)
        if run is None:
            return None
        loaded = self.conn.execute(
            "SELECT loaded_ns FROM partitions WHERE partition_key = ?", (partition_key,)
        ).fetchone()
        if loaded is not None and loaded[0] > run.detected_ns:
            return None
        return [
            EnergyBurstRow(*r)
            for r in self.conn.execute(
                f"SELECT {_COLS} FROM energy_bursts WHERE partition_key = ? ORDER BY t_start_ns, freq_lower_hz",
                (partition_key,),
            )
        ]
