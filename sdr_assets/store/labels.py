"""The analysis DB's ``labels`` table: YOLO boxes on spectrogram frames, and where each came from.

``source`` (migration 4): "annotation" (ground truth: synthetic truth, SigMF annotations),
"rtl_433" (a package rtl_433's pulse detector found, decoded or not: the decoder teaches) or
"energy" (the energy detector's auto-label, ``auto = 1``: only a fallback).
"""

from collections.abc import Sequence
from dataclasses import dataclass

SOURCES = ("annotation", "rtl_433", "energy")


@dataclass(frozen=True)
class LabelRow:
    """One YOLO box (normalised to the frame) of a class, on one frame, and its source."""

    frame_id: int
    class_name: str
    x_center: float
    y_center: float
    width: float
    height: float
    source: str  # one of SOURCES

    @property
    def auto(self) -> bool:
        """An energy-detector auto-label (not an independent label)."""
        return self.source == "energy"


class LabelQueries:
    """The labels table, as methods of the analysis DB (``AnalysisDB`` mixes this in)."""

    def replace_labels(self, partition_key: str, rows: Sequence[LabelRow]) -> None:
        """The partition's labels become ``rows``, in one transaction."""
        with self.transaction(f"writing the labels of {partition_key}") as conn:
            conn.execute("DELETE FROM labels WHERE partition_key = ?", (partition_key,))
            conn.executemany(
                "INSERT INTO labels (frame_id, partition_key, class_name, x_center, y_center, width, "
                "height, auto, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.frame_id,
                        partition_key,
                        r.class_name,
                        r.x_center,
                        r.y_center,
                        r.width,
                        r.height,
                        int(r.auto),
                        r.source,
                    )
                    for r in rows
                ],
            )

    def labels(self, *partition_keys: str, include_auto: bool = True) -> list[LabelRow]:
        """The labels of the partitions, in the order they were written (independent labels
        only unless ``include_auto``)."""
        if not partition_keys:
            return []
        marks = ", ".join("?" * len(partition_keys))
        auto_sql = "" if include_auto else " AND auto = 0"
        return [
            LabelRow(*row)
            for row in self.conn.execute(
                f"SELECT frame_id, class_name, x_center, y_center, width, height, "
                f"coalesce(source, CASE WHEN auto THEN 'energy' ELSE 'annotation' END) FROM labels "
                f"WHERE partition_key IN ({marks}){auto_sql} ORDER BY label_id",
                partition_keys,
            )
        ]

    def label_sources(self, partition_key: str) -> dict[str, int]:
        """Boxes per source in the partition."""
        return dict(
            self.conn.execute(
                "SELECT source, count(*) FROM labels WHERE partition_key = ? GROUP BY source ORDER BY source",
                (partition_key,),
            ).fetchall()
        )

    def labelled_partitions(
        self, limit: int, before_ns: int | None = None, independent_only: bool = False
    ) -> list[str]:
        """The newest ``limit`` partitions with labels whose frames start before ``before_ns``, oldest
        first; ``independent_only``: only partitions with a label that is not an energy auto-label."""
        rows = self.conn.execute(
            "SELECT partition_key, min(t_start_ns) AS t0 FROM frames WHERE partition_key IN "
            f"(SELECT DISTINCT partition_key FROM labels{' WHERE auto = 0' if independent_only else ''}) "
            "GROUP BY partition_key "
            + ("HAVING t0 < ? " if before_ns is not None else "")
            + "ORDER BY t0 DESC LIMIT ?",
            ((int(before_ns),) if before_ns is not None else ()) + (int(limit),),
        ).fetchall()
        return [k for k, _ in reversed(rows)]
