"""CRC-32 of the chunks (zlib's CRC-32, the hot DB's ``iq_crc32``), computed where the bytes lie.

The capture computes one CRC-32 per stored byte, on the reader's thread. zlib's runs at
~2 GB/s here; libdeflate's (PCLMULQDQ on x86, PMULL on ARM) at ~8 GB/s. When the system has
``libdeflate.so.0`` (Debian's libdeflate0, which libtiff pulls in) it is called through ctypes
(which releases the GIL); otherwise zlib. Both give the same value (tested): readers check it
with ``zlib.crc32``.
"""

import ctypes
import zlib

LIBDEFLATE = "libdeflate.so.0"


def _load_libdeflate():
    try:
        lib = ctypes.CDLL(LIBDEFLATE)
        fn = lib.libdeflate_crc32
    except (OSError, AttributeError):
        return None
    fn.restype = ctypes.c_uint32
    fn.argtypes = (ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)
    probe = b"123456789"
    if fn(0, ctypes.cast(ctypes.c_char_p(probe), ctypes.c_void_p), len(probe)) != zlib.crc32(probe):
        return None  # not the CRC-32 we store
    return fn


_libdeflate_crc32 = _load_libdeflate()


def implementation() -> str:
    """'libdeflate' or 'zlib': which computes :class:`RegionCrc` values in this process."""
    return "zlib" if _libdeflate_crc32 is None else "libdeflate"


class RegionCrc:
    """CRC-32s of regions of one writable buffer (the capture ring's mmap), by offset."""

    def __init__(self, buffer, *, use_libdeflate: bool = True) -> None:
        self._view = memoryview(buffer)
        self._fn = _libdeflate_crc32 if use_libdeflate else None
        if self._fn is not None:
            self._anchor = ctypes.c_char.from_buffer(buffer)  # keeps the buffer exported (never resized)
            self._base = ctypes.addressof(self._anchor)

    def crc32(self, offset: int, n_bytes: int, crc: int = 0) -> int:
        """zlib.crc32(buffer[offset:offset + n_bytes], crc)."""
        if not 0 <= offset <= offset + n_bytes <= self._view.nbytes:
            raise ValueError(f"region {offset}+{n_bytes} is outside the buffer of {self._view.nbytes} bytes")
        if self._fn is None:
            return zlib.crc32(self._view[offset : offset + n_bytes], crc)
        return self._fn(crc, self._base + offset, n_bytes)
