"""`sdr-assets decode --source URI`: rtl_433's messages from a live rtl_tcp server (rtl_433 is its
client) or from a recording streamed through the runner; one line a message (decode/stream.py)."""

import signal

import click

from sdr_assets.records import utc_iso

DEFAULT_CENTER_FREQ_HZ = 433.92e6
DEFAULT_SAMPLE_RATE_HZ = 250e3


def format_message(tm) -> str:
    """``2026-11-23T10:00:00.503542Z  GT-WT02  id 52  ch 1  433.892 MHz  SNR 4.4 dB``."""
    m = tm.message
    parts = [
        utc_iso(tm.t_ns, digits=6),
        m.model,
        f"id {m.device_id}" if m.device_id is not None else "id -",
        f"ch {m.channel}" if m.channel is not None else "ch -",
        f"{m.freq_hz / 1e6:.3f} MHz" if m.freq_hz is not None else "- MHz",
        f"SNR {m.snr_db:.1f} dB" if m.snr_db is not None else "SNR -",
    ]
    return "  ".join(parts)


@click.command()
@click.option(
    "--source",
    "source_uri",
    required=True,
    metavar="URI",
    help="rtl_tcp://HOST:PORT[?ppm=N] (live: rtl_433 connects to the server, e.g. "
    "`sdr-assets serve-rtl-tcp` or rtl_tcp on a remote sensor) or file://PATH (a cu8 "
    "recording named like NAME_433.92M_250k.cu8, or SigMF).",
)
@click.option(
    "--center-freq-hz",
    type=float,
    default=None,
    help="rtl_tcp: tune the server here (default 433.92 MHz); file: when the name does not say.",
)
@click.option(
    "--sample-rate-hz",
    type=float,
    default=None,
    help="rtl_tcp: the server's rate (default 250000); file: when the name does not say.",
)
@click.option("--gain-db", type=float, default=None, help="rtl_tcp: manual gain (default automatic).")
@click.option(
    "--duration-s",
    type=float,
    default=None,
    help="rtl_tcp: stop after this long (default: until Ctrl-C or the server closes).",
)
def decode(source_uri: str, center_freq_hz, sample_rate_hz, gain_db, duration_s) -> None:
    """Print rtl_433's messages from SOURCE: time (UTC), model, id, channel, frequency, SNR."""
    from sdr_assets.decode import rtl433_version
    from sdr_assets.errors import ConfigError

    scheme = source_uri.partition("://")[0].strip().lower() if "://" in source_uri else ""
    if scheme not in ("rtl_tcp", "file"):
        raise ConfigError(
            f"decode reads rtl_tcp://HOST:PORT or file://PATH, not {source_uri!r}; for a USB "
            "dongle serve it first (sdr-assets serve-rtl-tcp --source rtlsdr://0) and decode "
            "rtl_tcp://127.0.0.1:1234."
        )
    if duration_s is not None and duration_s <= 0:
        raise ConfigError(f"--duration-s {duration_s:g}: must be > 0.")
    version = rtl433_version()  # DecodeError naming the Debian package when rtl_433 is missing
    n = 0

    def show(tm) -> None:
        nonlocal n
        n += 1
        click.echo(format_message(tm))

    if scheme == "file":
        if duration_s is not None or gain_db is not None:
            raise ConfigError("--duration-s and --gain-db apply to live rtl_tcp:// sources; a file is decoded whole.")
        from sdr_assets.capture.uri import open_source
        from sdr_assets.decode.stream import decode_events

        source = open_source(source_uri, center_freq_hz=center_freq_hz, sample_rate_hz=sample_rate_hz, realtime=False)
        info = source.open()
        click.echo(
            f"decoding {info.uri} ({info.center_freq_hz:.0f} Hz, {info.sample_rate_hz:.0f} S/s) with rtl_433 {version}",
            err=True,
        )
        try:
            for tm in decode_events(source.events()):
                show(tm)
        finally:
            source.close()
        click.echo(f"{n} messages", err=True)
        return

    from sdr_assets.capture.uri import parse_rtl_tcp_uri, validate_sample_rate_hz
    from sdr_assets.decode.stream import LiveDecoder

    host, port, ppm = parse_rtl_tcp_uri(source_uri)
    rate = validate_sample_rate_hz(DEFAULT_SAMPLE_RATE_HZ if sample_rate_hz is None else sample_rate_hz)
    fc = DEFAULT_CENTER_FREQ_HZ if center_freq_hz is None else center_freq_hz
    live = LiveDecoder(host, port, center_freq_hz=fc, sample_rate_hz=rate, gain_db=gain_db, ppm=ppm)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: live.stop())
    why = live.run(
        show,
        duration_s,
        on_connected=lambda line: click.echo(
            f"decoding rtl_tcp://{host}:{port} ({fc:.0f} Hz, {rate:.0f} S/s) with rtl_433 {version}: {line}; "
            "Ctrl-C stops",
            err=True,
        ),
    )
    ended = {
        "server closed": "the server closed the connection",
        "stopped": "stopped",
        "duration": f"--duration-s {duration_s or 0:g} passed",
    }[why]
    click.echo(f"{n} messages; {ended}", err=True)
