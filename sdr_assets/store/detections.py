"""Detections in the analysis DB, per partition, with lineage to the hot DB's chunks and the model."""

from collections.abc import Sequence
from dataclasses import dataclass

from sdr_assets.records import TimeFreqBox, box_of


@dataclass(frozen=True)
class DetectionRow:
    """One detection: a time-frequency box, its label and confidence, the frame it was seen on
    and the hot-DB chunk seqs holding its samples."""

    t_start_ns: int
    t_end_ns: int
    freq_lower_hz: float
    freq_upper_hz: float
    label: str
    confidence: float
    frame_id: int  # -1 when the partition has no frames
    first_seq: int
    last_seq: int
    model_version: str | None = None  # set when read back from the table
    detection_id: int | None = None  # likewise

    @property
    def box(self) -> TimeFreqBox:
        return box_of(self, self.confidence)


_COLUMNS = "t_start_ns, t_end_ns, freq_lower_hz, freq_upper_hz, label, confidence, frame_id, first_seq, last_seq"


class DetectionQueries:
    """The detections table, as methods of the analysis DB (``AnalysisDB`` mixes this in)."""

    def replace_detections(self, partition_key: str, model_version: str, rows: Sequence[DetectionRow]) -> None:
        """The partition's detections become ``rows`` (found by ``model_version``), in one transaction."""
        with self.transaction(f"writing the detections of {partition_key}") as conn:
            conn.execute("DELETE FROM detections WHERE partition_key = ?", (partition_key,))
            conn.executemany(
                f"INSERT INTO detections (partition_key, model_version, {_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                [
                    (
                        partition_key,
                        model_version,
                        r.t_start_ns,
                        r.t_end_ns,
                        r.freq_lower_hz,
                        r.freq_upper_hz,
                        r.label,
                        r.confidence,
                        r.frame_id,
                        r.first_seq,
                        r.last_seq,
                    )
                    for r in rows
                ],
            )

    def detections(self, partition_key: str) -> list[DetectionRow]:
        """The partition's detections in time order."""
        return [
            DetectionRow(*r)
            for r in self.conn.execute(
                f"SELECT {_COLUMNS}, model_version, detection_id FROM detections WHERE partition_key = ? "
                "ORDER BY t_start_ns",
                (partition_key,),
            )
        ]
