"""Property test of the write path, not only the parsers: SigMF recordings whose metadata holds
extreme but parseable values (rates of 1 Hz and 1e11 Hz, dates from the year 1 to 9999,
annotations 2**62 samples on, frequencies of +-1e15 Hz, any label) are replayed by the real
capture service into a real hot DB that already holds a capture. Each either is stored cleanly
(every sample, every annotation) or is refused with one one-line SdrAssetsError, never another
exception or a traceback; the capture stored before is intact either way."""

import hashlib
import io
import json
import os
import shutil
import tempfile
from contextlib import redirect_stderr
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sdr_assets.capture.file import FileSource
from sdr_assets.capture.service import CaptureService
from sdr_assets.errors import SdrAssetsError
from sdr_assets.records import Chunk, SourceInfo
from sdr_assets_tests.capture_support import query
from sdr_assets_tests.helpers import integrity

SCALE = max(1, int(os.environ.get("SDR_ASSETS_FUZZ_SCALE", "1")))
_SIZES = {"cu8": 2, "ci16_le": 4, "cf32_le": 8}

_DATETIMES = st.one_of(
    st.sampled_from(
        [
            "0001-01-01T00:00:00Z",
            "1677-09-21T00:12:43.145224192Z",
            "1969-12-31T23:59:59.999999999Z",
            "1970-01-01T00:00:00Z",
            "2024-05-01T12:00:00.5+14:00",
            "2262-04-11T23:47:16.854775807Z",
            "2262-04-11T23:47:16Z",
            "9999-12-31T23:59:59.999999999Z",
        ]
    ),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)).map(
        lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    ),
)
_SAMPLE_INDEX = st.one_of(st.integers(0, 400), st.sampled_from([2**62 - 1, 2**61, 2**40, 10**12]))
_FREQ = st.one_of(st.floats(-1e15, 1e15), st.sampled_from([-1e15, 0.0, 1e15, 433.92e6]))


@st.composite
def _recording(draw):
    """(meta dict, n_samples) of a SigMF recording with extreme-but-parseable values."""
    datatype = draw(st.sampled_from(sorted(_SIZES)))
    rate = draw(st.one_of(st.sampled_from([1, 1.5, 250_000, 3.2e6, 1e11]), st.floats(1.0, 1e11)))
    starts = sorted(set(draw(st.lists(_SAMPLE_INDEX, max_size=3))))
    captures = []
    for start in starts:
        cap = {"core:sample_start": start}
        if draw(st.booleans()):
            cap["core:frequency"] = draw(_FREQ)
        if draw(st.booleans()):
            cap["core:datetime"] = draw(_DATETIMES)
        captures.append(cap)
    annotations = []
    for _ in range(draw(st.integers(0, 3))):
        ann = {
            "core:sample_start": draw(_SAMPLE_INDEX),
            "core:label": draw(st.one_of(st.text(max_size=8), st.just("\ud800"), st.just("\x00"))),
        }
        if draw(st.booleans()):
            ann["core:sample_count"] = draw(_SAMPLE_INDEX)
        if draw(st.booleans()):
            lo, hi = sorted((draw(_FREQ), draw(_FREQ)))
            ann["core:freq_lower_edge"], ann["core:freq_upper_edge"] = lo, hi
        annotations.append(ann)
    meta = {
        "global": {"core:datatype": datatype, "core:sample_rate": rate, "core:version": "1.0.0"},
        "captures": captures,
        "annotations": annotations,
    }
    return meta, draw(st.integers(0, 300))


@pytest.fixture(scope="module")
def hot_with_a_capture(tmp_path_factory):
    """A hot DB holding one earlier capture, and what that capture stored."""
    import time

    from sdr_assets.store.hot import HotWriter

    hot = tmp_path_factory.mktemp("fuzz_write") / "hot.db"
    rng = np.random.default_rng(3)
    t0 = time.time_ns() - 3600 * 10**9
    chunks = []
    for _ in range(4):
        chunks.append(
            Chunk(
                chunks[-1].t_end_ns if chunks else t0,
                433.92e6,
                250_000.0,
                None,
                rng.integers(0, 256, 20_000, dtype=np.uint8).tobytes(),
            )
        )
    with HotWriter(hot) as w:
        cid = w.begin_capture(SourceInfo("test://earlier", "file", 433.92e6, 250_000.0), t0)
        w.write_batch(cid, chunks)
    return hot, _capture_rows(hot, cid)


def _capture_rows(hot: Path, capture_id: int) -> tuple:
    """The capture row and its chunks (the samples as a sha256: short enough to print)."""
    chunks = query(
        hot,
        "SELECT seq, t_start_ns, n_samples, iq_crc32, iq FROM chunks WHERE capture_id = ? ORDER BY seq",
        (capture_id,),
    )
    return (
        query(hot, "SELECT source_uri, started_ns FROM captures WHERE capture_id = ?", (capture_id,)),
        [row[:4] for row in chunks],
        hashlib.sha256(b"".join(row[4] for row in chunks)).hexdigest(),
    )


@settings(
    max_examples=60 * SCALE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(_recording(), st.binary(min_size=8, max_size=8))
def test_extreme_sigmf_values_are_stored_whole_or_refused_in_one_line(hot_with_a_capture, recording, seed):
    template, earlier = hot_with_a_capture
    meta, n_samples = recording
    rng = np.random.default_rng(list(seed))
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        hot = d / "hot.db"
        shutil.copy(template, hot)
        (d / "r.sigmf-meta").write_text(json.dumps(meta))
        (d / "r.sigmf-data").write_bytes(
            rng.integers(0, 256, n_samples * _SIZES[meta["global"]["core:datatype"]], dtype=np.uint8).tobytes()
        )
        service = CaptureService(FileSource(d / "r", chunk_samples=64), hot, window_s_for_capacity_check=1e-3)
        stderr = io.StringIO()
        try:
            with redirect_stderr(stderr):  # the service prints a traceback for any unexpected error
                summary = service.run()
        except SdrAssetsError as exc:
            event(f"refused: {type(exc).__name__}")
            assert "\n" not in str(exc) and str(exc).strip()
            summary = None
        assert "Traceback" not in stderr.getvalue(), stderr.getvalue()
        if summary is not None:
            event("stored")
            assert summary.samples_stored == n_samples > 0
            (stored,) = query(
                hot, "SELECT coalesce(sum(n_samples), 0) FROM chunks WHERE capture_id = ?", (summary.capture_id,)
            )[0]
            assert stored == n_samples
            n_ann = query(hot, "SELECT count(*) FROM annotations WHERE capture_id = ?", (summary.capture_id,))
            assert n_ann[0][0] == len(meta["annotations"])
        assert _capture_rows(hot, 1) == earlier
        assert integrity(hot) == "ok"
