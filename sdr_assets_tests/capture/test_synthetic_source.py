"""SyntheticSource: ground truth before each chunk, sample-clock pacing, stop, retuning."""

import threading
import time

import pytest

from sdr_assets.capture.synthetic import SyntheticSource, parse_synthetic_query
from sdr_assets.dsp.synth import BandScenario
from sdr_assets.errors import ConfigError, SourceError
from sdr_assets.records import Annotation, Chunk, samples_to_ns


def take(source, n_chunks):
    events = []
    for ev in source.events():
        events.append(ev)
        if sum(isinstance(e, Chunk) for e in events) == n_chunks:
            break
    return events


def test_chunks_match_the_scenario_and_annotations_precede_their_chunk():
    fs, n = 1e6, 50_000
    src = SyntheticSource(
        seed=9, sample_rate_hz=fs, center_freq_hz=100e6, realtime=False, chunk_samples=n, emissions_per_s=40
    )
    info = src.open()
    assert info.kind == "synthetic" and info.realtime is False and info.sample_rate_hz == fs
    events = take(src, 20)
    src.close()
    chunks = [e for e in events if isinstance(e, Chunk)]
    ref, ref_em = BandScenario(9, fs, 100e6, emissions_per_s=40).render(20 * n)
    assert b"".join(c.iq for c in chunks) == ref.tobytes()
    assert all(c.center_freq_hz == 100e6 and c.sample_rate_hz == fs for c in chunks)
    for a, b in zip(chunks, chunks[1:]):
        assert abs(b.t_start_ns - a.t_end_ns) <= 1
    anns = [e for e in events if isinstance(e, Annotation)]
    assert len(anns) == len(ref_em) > 5
    for ann, em in zip(anns, ref_em):
        assert ann.origin == "synthetic" and ann.label == em.label and ann.snr_db == em.snr_db
        assert ann.t_start_ns == src.t0_ns + samples_to_ns(em.start_sample, fs)
        assert (ann.freq_lower_hz, ann.freq_upper_hz) == (em.freq_lower_hz, em.freq_upper_hz)
        # the next chunk after the annotation is the one the emission starts in
        nxt = next(e for e in events[events.index(ann) :] if isinstance(e, Chunk))
        assert nxt.t_start_ns <= ann.t_start_ns < nxt.t_end_ns


def test_realtime_pacing_follows_the_sample_clock():
    fs = 250e3
    src = SyntheticSource(sample_rate_hz=fs, chunk_samples=12_500)  # 50 ms chunks
    src.open()
    threading.Timer(0.5, src.stop).start()
    t0 = time.monotonic()
    n = sum(e.n_samples for e in src.events() if isinstance(e, Chunk))
    elapsed = time.monotonic() - t0
    src.close()
    assert n / fs == pytest.approx(0.5, rel=0.2)
    assert elapsed < 0.7


def test_stop_ends_a_long_wait_promptly():
    src = SyntheticSource(sample_rate_hz=250e3, chunk_samples=500_000)  # a 2 s chunk
    src.open()
    threading.Timer(0.2, src.stop).start()
    t0 = time.monotonic()
    assert list(src.events()) == []
    assert time.monotonic() - t0 < 1.0


def test_retune_applies_to_later_chunks_and_time_continues():
    src = SyntheticSource(
        seed=1, sample_rate_hz=1e6, center_freq_hz=433.92e6, realtime=False, chunk_samples=10_000, emissions_per_s=200
    )
    src.open()
    it = src.events()
    first = next(e for e in it if isinstance(e, Chunk))
    assert src.set_center_freq_hz(868.3e6) and src.set_sample_rate_hz(2e6)
    assert src.set_gain_db(20.0)
    rest = []
    for ev in it:
        rest.append(ev)
        if sum(isinstance(e, Chunk) for e in rest) == 5:
            break
    src.stop()
    chunks = [e for e in rest if isinstance(e, Chunk)]
    assert chunks[0].t_start_ns == first.t_end_ns
    assert all(c.center_freq_hz == 868.3e6 and c.sample_rate_hz == 2e6 and c.gain_db == 20.0 for c in chunks)
    anns = [e for e in rest if isinstance(e, Annotation)]
    assert anns and all(868.3e6 - 0.8e6 <= a.freq_lower_hz < a.freq_upper_hz <= 868.3e6 + 0.8e6 for a in anns)


def test_events_before_open_is_a_source_error():
    with pytest.raises(SourceError, match="open"):
        next(SyntheticSource().events())


def test_parse_query_names():
    q = parse_synthetic_query(
        "seed=3&rate=250e3&center=868.3e6&emissions_per_s=2&noise_dbfs=-40&kinds=cw,ook&chunk_samples=4096"
    )
    assert q == {
        "seed": 3,
        "sample_rate_hz": 250e3,
        "center_freq_hz": 868.3e6,
        "emissions_per_s": 2.0,
        "noise_dbfs": -40.0,
        "kinds": ("cw", "ook"),
        "chunk_samples": 4096,
    }
    assert parse_synthetic_query("sample_rate_hz=1e6&center_freq_hz=1e8") == {
        "sample_rate_hz": 1e6,
        "center_freq_hz": 1e8,
    }
    assert parse_synthetic_query("") == {}
    src = SyntheticSource(**q)
    assert src.open().center_freq_hz == 868.3e6


@pytest.mark.parametrize(
    "query,needle",
    [
        ("sed=3", "'sed'"),
        ("rate=fast", "rate"),
        ("kinds=cw,morse", "morse"),
        ("chunk_samples=0", "chunk_samples"),
        ("emissions_per_s=-1", "emissions_per_s"),
    ],
)
def test_bad_query_is_a_config_error_naming_the_key(query, needle):
    with pytest.raises(ConfigError, match=needle) as exc:
        parse_synthetic_query(query)
    if query.startswith("sed"):
        assert "seed" in str(exc.value) and "center_freq_hz" in str(exc.value)


def test_bad_scenario_settings_are_config_errors():
    with pytest.raises(ConfigError):
        SyntheticSource(kinds=("morse",))
    with pytest.raises(ConfigError):
        SyntheticSource(chunk_samples=0)


def test_an_impossible_retune_is_refused_now_and_the_stream_goes_on():
    """A rate the band cannot hold used to be taken, then crash events() at the next chunk."""
    src = SyntheticSource(seed=1, sample_rate_hz=250e3, realtime=False, chunk_samples=4096)
    src.open()
    it = src.events()
    next(e for e in it if isinstance(e, Chunk))
    for rate_hz in (0.0, 1.0, 100.0, float("nan")):
        with pytest.raises(ConfigError, match="cannot be synthesised"):
            src.set_sample_rate_hz(rate_hz)
    chunks = [e for _, e in zip(range(20), it) if isinstance(e, Chunk)]
    src.stop()
    assert chunks and all(c.sample_rate_hz == 250e3 for c in chunks)


@pytest.mark.parametrize("query", ["seed=1&rate=3200000", "seed=1&rate=250000&profile=ism&emissions_per_s=50"])
def test_a_synthetic_capture_imports_no_scipy(query):
    """`sdr-assets capture --source synthetic://...` must stay small (512 MB boards): the
    synthetic band needs numpy, never scipy (~75 MB of RSS), torch or dagster."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "import sdr_assets.cli, sdr_assets.capture.console, sdr_assets.capture.service\n"
        "from sdr_assets.capture.uri import open_source\n"
        "from sdr_assets.records import Chunk\n"
        f"src = open_source('synthetic://?{query}&duration_s=2', realtime=False)\n"
        "src.open()\n"
        "n = sum(isinstance(e, Chunk) for e in src.events())\n"
        "heavy = ('scipy', 'torch', 'dagster', 'PIL', 'ultralytics', 'pandas', 'matplotlib')\n"
        "print(json.dumps([n, sorted(m for m in heavy if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n_chunks, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    assert n_chunks > 0
    assert heavy == []
