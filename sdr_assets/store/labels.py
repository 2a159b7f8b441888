"""Training labels in the analysis DB: YOLO boxes on spectrogram frames, per partition."""

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class LabelRow:
    """One YOLO box (normalised to the frame) of a class, on one frame."""

    frame_id: int
    class_name: str
    x_center: float
    y_center: float
    width: float
    height: float
    auto: bool  # True: an energy-detector auto-label; False: ground truth


class LabelQueries:
    """The labels table, as methods of the analysis DB (``AnalysisDB`` mixes this in)."""

    def replace_labels(self, partition_key: str, rows: Sequence[LabelRow]) -> None:
        """The partition's labels become ``rows``, in one transaction."""
        with self.transaction(f"writing the labels of {partition_key}") as conn:
            conn.execute("DELETE FROM labels WHERE partition_key = ?", (partition_key,))
            conn.executemany("INSERT INTO labels (frame_id, partition_key, class_name, x_center, y_center, width, "
                             "height, auto) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [(r.frame_id, partition_key, r.class_name, r.x_center, r.y_center, r.width, r.height,
                               int(r.auto)) for r in rows])

    def labels(self, *partition_keys: str, include_auto: bool = True) -> list[LabelRow]:
        """The labels of the partitions, in the order they were written (ground truth only
        unless ``include_auto``)."""
        if not partition_keys:
            return []
        marks = ", ".join("?" * len(partition_keys))
        auto_sql = "" if include_auto else " AND auto = 0"
        return [LabelRow(fid, name, xc, yc, w, h, bool(auto)) for fid, name, xc, yc, w, h, auto in self.conn.execute(
            f"SELECT frame_id, class_name, x_center, y_center, width, height, auto FROM labels "
            f"WHERE partition_key IN ({marks}){auto_sql} ORDER BY label_id", partition_keys)]

    def labelled_partitions(self, limit: int, before_ns: int | None = None) -> list[str]:
        """The newest ``limit`` partitions with labels whose frames start before ``before_ns``, oldest first."""
        rows = self.conn.execute(
            "SELECT partition_key, min(t_start_ns) AS t0 FROM frames WHERE partition_key IN "
            "(SELECT DISTINCT partition_key FROM labels) GROUP BY partition_key "
            + ("HAVING t0 < ? " if before_ns is not None else "") + "ORDER BY t0 DESC LIMIT ?",
            ((int(before_ns),) if before_ns is not None else ()) + (int(limit),)).fetchall()
        return [k for k, _ in reversed(rows)]
