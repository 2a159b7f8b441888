"""External decoders run over IQ (rtl_433). No dagster, no SQL: samples in, records out."""

from sdr_assets.decode.rtl433 import (DEBIAN_PACKAGE, Rtl433Message, Rtl433Package,
                                      Rtl433Result, decode_cu8, find_rtl433, rtl433_version)

__all__ = ["DEBIAN_PACKAGE", "Rtl433Message", "Rtl433Package", "Rtl433Result", "decode_cu8",
           "find_rtl433", "rtl433_version"]
