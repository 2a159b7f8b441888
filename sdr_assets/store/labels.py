"""The analysis DB's ``labels`` table: YOLO boxes on spectrogram frames, and where each came from.

``source`` (migration 4): "annotation" (ground truth: synthetic truth, SigMF annotations),
"rtl_433" (a package rtl_433's pulse detector found, decoded or not: the decoder teaches) or
"energy" (the energy detector's auto-label, ``auto = 1``: only a fallback).
"""

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from sdr_assets.store.window import transaction

SOURCES = ("annotation", "rtl_433", "energy")


@dataclass(frozen=True)
class LabelRow:
    frame_id: int
    class_name: str
    x_center: float  # YOLO normalised box
    y_center: float
    width: float
    height: float
    source: str  # one of SOURCES

    @property
    def auto(self) -> bool:
        return self.source == "energy"


def replace_labels(conn: sqlite3.Connection, partition_key: str, rows: Sequence[LabelRow]) -> None:
    """Replace the partition's labels in one transaction."""
    with transaction(conn):
        conn.execute("DELETE FROM labels WHERE partition_key = ?", (partition_key,))
        conn.executemany(
            "INSERT INTO labels (frame_id, partition_key, class_name, x_center, y_center, width, height, "
            "auto, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.frame_id, partition_key, r.class_name, r.x_center, r.y_center, r.width, r.height,
              int(r.auto), r.source) for r in rows])


def label_sources(conn: sqlite3.Connection, partition_key: str) -> dict[str, int]:
    """Boxes per source in the partition."""
    return dict(conn.execute("SELECT source, count(*) FROM labels WHERE partition_key = ? GROUP BY source "
                             "ORDER BY source", (partition_key,)).fetchall())
