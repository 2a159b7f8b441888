"""The body of `sdr-assets serve-api`: check the flags, bind the socket, serve until Ctrl-C."""

import ipaddress
import math
import socket
from collections.abc import Callable
from pathlib import Path

from sdr_assets.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on HOST:PORT, or a ConfigError that says what to change."""
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port {port}: give a TCP port in 1..65535, e.g. --port {DEFAULT_PORT}.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host {host!r} cannot be resolved ({exc.strerror}); give an address such as {DEFAULT_HOST}."
        ) from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); is another server using that port? Pass another --port."
        ) from None
    return sock


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def serve(
    root: Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    max_iq_mb: float = 256.0,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve the API over the data root ``root`` until SIGINT/SIGTERM."""
    import uvicorn

    from sdr_assets.api.app import ApiSettings, create_app

    if not (math.isfinite(max_iq_mb) and max_iq_mb > 0):
        raise ConfigError(f"--max-iq-mb {max_iq_mb:g}: give a size > 0 in MB, e.g. --max-iq-mb 256.")
    app = create_app(ApiSettings(Path(root), max_iq_bytes=int(max_iq_mb * 1e6)))
    sock = bind(host, port)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}"
    if not is_loopback(host):
        echo(
            f"warning: --host {host} is reachable from other machines and the API has no "
            "authentication; everything under the data root can be read by anyone who reaches it."
        )
    echo(f"sdr_assets API on {url} (data root {root}; OpenAPI docs at {url}/docs); Ctrl-C stops it")
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
