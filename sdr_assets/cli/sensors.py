"""`sdr-assets sensors ...` and the ``--sensor`` option other commands share.

A radio sensor is one capture service and its own hot DB under the data root. Registering one
(``sensors add``) writes its folder; the Dagster instance learns it as a partition of the
``sensor`` dimension from ``hot_db_sensor`` (within 30 s), or at once with ``sensors sync``
(or when ``add`` runs with ``$DAGSTER_HOME`` set).
"""

import os

import click

from sdr_assets.paths import DEFAULT_SENSOR, ENV_SENSOR
from sdr_assets.records import utc_iso


def _sensor_paths(ctx, param, value: str):
    """Validate the sensor name; the command gets the data root's DataPaths for that sensor."""
    from sdr_assets.paths import DataPaths
    from sdr_assets.store.sensors import require_registered

    paths = DataPaths.from_env(create=False).for_sensor(value)
    require_registered(paths, value)
    return paths


def sensor_option(f):
    """``--sensor NAME`` (env SDR_ASSETS_SENSOR, default "default"): which hot DB to use; the
    command receives it as ``paths`` (the data root's DataPaths for that sensor)."""
    return click.option(
        "--sensor",
        "paths",
        default=DEFAULT_SENSOR,
        show_default=True,
        envvar=ENV_SENSOR,
        callback=_sensor_paths,
        is_eager=True,
        metavar="NAME",
        help="The radio sensor (its own hot DB); register others with `sdr-assets sensors add NAME`.",
    )(f)


def _sync_dagster(names: list[str]) -> str:
    """Register ``names`` in the Dagster instance at $DAGSTER_HOME; a line saying what happened."""
    if not os.environ.get("DAGSTER_HOME"):
        return (
            "Dagster: $DAGSTER_HOME is not set here; hot_db_sensor adds the sensor as a "
            "partition within 30 s of its next tick (or run `sdr-assets sensors sync` with "
            "DAGSTER_HOME set)."
        )
    import dagster as dg

    from sdr_assets.defs.partitions import ensure_sensor_partitions

    with dg.DagsterInstance.get() as instance:
        new = ensure_sensor_partitions(instance, names)
    return (
        f"Dagster: added partition(s) {', '.join(new)} of dimension 'sensor'"
        if new
        else "Dagster: every sensor is already a partition"
    )


@click.group("sensors")
def sensors() -> None:
    """Register and list radio sensors (each has its own hot DB and partitions)."""


@sensors.command("add")
@click.argument("name")
@click.option("--description", default="", help="Free text shown by `sensors list` (where it is, antenna).")
@click.option(
    "--source",
    "source_uri",
    default="",
    metavar="URI",
    help="The source URI you will capture from (recorded for reference only).",
)
def add(name: str, description: str, source_uri: str) -> None:
    """Register NAME: its folder and hot DB path under the data root, and its Dagster partition."""
    from sdr_assets.capture.uri import redact_uri
    from sdr_assets.paths import DataPaths
    from sdr_assets.store.sensors import register_sensor

    paths = DataPaths.from_env()
    source_uri = redact_uri(source_uri)  # for reference only: a password is never kept or shown
    info = register_sensor(paths, name, description=description, source=source_uri)
    click.echo(f"registered sensor {info.name}: hot DB {info.hot_db}")
    try:
        click.echo(_sync_dagster([info.name]))
    except Exception as exc:  # the instance (e.g. PostgreSQL) is down: the registration stands
        click.echo(
            f"warning: could not add {info.name} to the Dagster instance at $DAGSTER_HOME "
            f"({type(exc).__name__}: {exc}); hot_db_sensor adds it at its next tick, or run "
            "`sdr-assets sensors sync` once the instance is reachable.",
            err=True,
        )
    click.echo(f"capture into it with: sdr-assets capture --sensor {info.name} --source {source_uri or 'URI'}")


@sensors.command("list")
def list_cmd() -> None:
    """Every sensor of the data root: hot DB, size and the time span it holds."""

    from sdr_assets.paths import DataPaths
    from sdr_assets.store.sensors import list_sensors
    from sdr_assets.store.snapshot import hot_time_range

    for s in list_sensors(DataPaths.from_env()):
        if not s.hot_db.exists():
            held = "no hot DB yet"
        else:
            span = hot_time_range(s.hot_db)
            held = (
                "empty"
                if span is None
                else " .. ".join(utc_iso(t, sep=" ", suffix="") for t in span)
                + f" UTC, {s.hot_db.stat().st_size / 1e6:.1f} MB"
            )
        desc = f"  ({s.description})" if s.description else ""
        click.echo(f"{s.name:<20} {s.hot_db}  {held}{desc}")


@sensors.command("sync")
def sync() -> None:
    """Register every sensor of the data root in the Dagster instance at $DAGSTER_HOME now."""
    from sdr_assets.errors import ConfigError
    from sdr_assets.paths import DataPaths
    from sdr_assets.store.sensors import list_sensors

    if not os.environ.get("DAGSTER_HOME"):
        raise ConfigError(
            "$DAGSTER_HOME is not set: point it at the Dagster instance (`make run` "
            "uses $SDR_ASSETS_HOME/dagster), then run `sdr-assets sensors sync` again."
        )
    click.echo(_sync_dagster([s.name for s in list_sensors(DataPaths.from_env())]))
