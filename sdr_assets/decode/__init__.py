"""External decoders run over IQ (rtl_433). No dagster.

- ``rtl433``: the runner (cu8 in on stdin, messages and ``-A`` packages out); stable API:
  ``find_rtl433``, ``rtl433_version``, ``decode_cu8`` -> ``Rtl433Result``.
- ``window``: rtl_433 over one partition of the analysis DB (absolute times, bands, lineage).
- ``inventory``: the device inventory and its new / missing alerts.
"""

from sdr_assets.decode.rtl433 import (
    DEBIAN_PACKAGE,
    DECODER,
    Rtl433Message,
    Rtl433Package,
    Rtl433Result,
    decode_cu8,
    find_rtl433,
    rtl433_version,
)

__all__ = [
    "DEBIAN_PACKAGE",
    "DECODER",
    "Rtl433Message",
    "Rtl433Package",
    "Rtl433Result",
    "decode_cu8",
    "find_rtl433",
    "rtl433_version",
]
