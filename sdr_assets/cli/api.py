"""`sdr-assets serve-api`: the read-only HTTP API (sdr_assets/api/)."""

import click


@click.command("serve-api")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on (loopback by default; the API has no authentication).",
)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option(
    "--max-iq-mb",
    default=256.0,
    show_default=True,
    type=float,
    help="Largest SigMF archive /api/iq streams (MB of samples); larger spans get a 413.",
)
def serve_api(host: str, port: int, max_iq_mb: float) -> None:
    """Serve the read-only HTTP API over $SDR_ASSETS_HOME until Ctrl-C (docs at /docs)."""
    from sdr_assets.api.server import serve
    from sdr_assets.paths import DataPaths

    serve(
        DataPaths.from_env().root,
        host=host,
        port=port,
        max_iq_mb=max_iq_mb,
        echo=lambda line: click.echo(line, err=True),
    )
