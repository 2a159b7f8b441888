"""cu8 <-> complex64, and conversion of other SigMF sample formats to cu8.

THE cu8 convention of this project (pyrtlsdr's): a byte ``u`` in 0..255 maps to

    x = u / 127.5 - 1 = (u - 127.5) / 127.5

so 0 -> -1.0, 255 -> +1.0 and the (unreachable) mid-code 127.5 -> 0.0. Bytes are
interleaved I, Q, I, Q ... (2 bytes per complex sample). The inverse,
:func:`complex64_to_cu8`, rounds ``x * 127.5 + 127.5`` to the nearest integer and clips it
to 0..255, so ``complex64_to_cu8(cu8_to_complex64(b))`` returns ``b`` exactly.

SigMF's own description of cu8 is ``(u - 128) / 128``; the two differ by half an LSB of
DC offset and 0.4 % of scale. Do not mix them: every part of this project calls
:func:`cu8_to_complex64`.

All functions are pure: arrays in, arrays out. Errors are ``ValueError`` (callers wrap them
into SourceError/ConfigError with their own context).
"""

import numpy as np

CU8_OFFSET = 127.5
CU8_SCALE = 127.5

# One float per byte value, and one complex64 per (I, Q) byte pair read as a little-endian
# uint16 (low byte = I, high byte = Q): a single 8-byte gather per complex sample.
CU8_LUT = ((np.arange(256, dtype=np.float64) - CU8_OFFSET) / CU8_SCALE).astype(np.float32)
_codes = np.arange(65536, dtype=np.uint32)
CU8_PAIR_LUT = (CU8_LUT[_codes & 0xFF] + 1j * CU8_LUT[_codes >> 8]).astype(np.complex64)
del _codes
_LITTLE = np.little_endian


def as_u8(buf: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """View ``buf`` as a flat uint8 array without copying (bytes stay read-only)."""
    if isinstance(buf, np.ndarray):
        if buf.dtype != np.uint8:
            raise ValueError(f"cu8 array must have dtype uint8, got {buf.dtype}")
        return buf.reshape(-1)
    return np.frombuffer(buf, dtype=np.uint8)


def _check_even(n_bytes: int, what: str) -> None:
    if n_bytes % 2:
        raise ValueError(
            f"{what}: got {n_bytes} bytes, an odd count; interleaved I/Q needs an even "
            "number (2 bytes per complex sample): drop or keep back the last byte"
        )


def cu8_pairs(buf: bytes | np.ndarray) -> np.ndarray:
    """cu8 bytes as uint16 codes, one per complex sample (index into ``CU8_PAIR_LUT``)."""
    u8 = as_u8(buf)
    _check_even(u8.size, "cu8_pairs")
    if not u8.flags.c_contiguous:
        u8 = np.ascontiguousarray(u8)
    codes = u8.view(np.uint16)
    return codes if _LITTLE else codes.byteswap()


def cu8_to_complex64(buf: bytes | np.ndarray) -> np.ndarray:
    """Interleaved cu8 -> complex64, ``(u - 127.5) / 127.5`` (see module docstring)."""
    return CU8_PAIR_LUT[cu8_pairs(buf)]


def complex64_to_cu8(x: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """complex samples -> interleaved cu8 (uint8, length 2 * len(x)).

    ``u = round(scale * x * 127.5 + 127.5)`` clipped to 0..255 (rounding half up). With
    ``scale=1`` this is the exact inverse of :func:`cu8_to_complex64` on its outputs.
    """
    x = np.asarray(x)
    if not np.iscomplexobj(x):
        raise ValueError(f"complex64_to_cu8 expects complex samples, got dtype {x.dtype}")
    flat = np.ascontiguousarray(x.reshape(-1), dtype=np.complex64).view(np.float32)
    y = np.multiply(flat, np.float32(scale * CU8_SCALE))
    y += np.float32(CU8_OFFSET + 0.5)  # + 0.5 then truncation = round half up
    np.clip(y, 0.0, np.float32(255.5), out=y)
    return y.astype(np.uint8)


def _float_to_cu8(v: np.ndarray) -> np.ndarray:
    """Interleaved real values in full scale [-1, 1] -> cu8 (round, clip)."""
    y = np.asarray(v, dtype=np.float32) * np.float32(CU8_SCALE)
    y += np.float32(CU8_OFFSET + 0.5)
    np.clip(y, 0.0, np.float32(255.5), out=y)
    return y.astype(np.uint8)


def ci16_to_cu8(buf: bytes | np.ndarray, big_endian: bool = False) -> tuple[np.ndarray, str]:
    """SigMF ``ci16_le`` (or ``ci16_be``) -> interleaved cu8.

    Scale: int16 full scale maps to cu8 full scale, ``u = round(v / 32768 * 127.5 + 127.5)``
    (clipped). The low 8 bits are lost. Returns ``(cu8 uint8 array, description)``.
    """
    dt = np.dtype(">i2" if big_endian else "<i2")
    if isinstance(buf, np.ndarray):
        v = buf.reshape(-1).astype(np.float32)
    else:
        if len(buf) % 2:
            raise ValueError(f"ci16: {len(buf)} bytes is not a whole number of int16 values")
        v = np.frombuffer(buf, dtype=dt).astype(np.float32)
    _check_even(v.size, "ci16 values")
    v *= np.float32(1.0 / 32768.0)
    name = "ci16_be" if big_endian else "ci16_le"
    return _float_to_cu8(v), f"{name} -> cu8: u = round(v/32768*127.5 + 127.5), clipped"


def cf32_to_cu8(buf: bytes | np.ndarray, big_endian: bool = False) -> tuple[np.ndarray, str]:
    """SigMF ``cf32_le`` (or ``cf32_be``) -> interleaved cu8.

    Scale: float full scale is +-1.0, ``u = round(v * 127.5 + 127.5)``, values outside
    [-1, 1] are clipped to 0/255. Returns ``(cu8 uint8 array, description)``.
    """
    dt = np.dtype(">f4" if big_endian else "<f4")
    if isinstance(buf, np.ndarray):
        v = buf.reshape(-1)
        if np.iscomplexobj(v):  # complex samples: interleave them
            v = np.ascontiguousarray(v, dtype=np.complex64).view(np.float32)
        v = v.astype(np.float32)
    else:
        if len(buf) % 4:
            raise ValueError(f"cf32: {len(buf)} bytes is not a whole number of float32 values")
        v = np.frombuffer(buf, dtype=dt).astype(np.float32)
    _check_even(v.size, "cf32 values")
    name = "cf32_be" if big_endian else "cf32_le"
    return _float_to_cu8(v), f"{name} -> cu8: u = round(v*127.5 + 127.5), |v|>1 clipped"


def ci8_to_cu8(buf: bytes | np.ndarray) -> tuple[np.ndarray, str]:
    """SigMF ``ci8`` -> interleaved cu8, lossless: ``u = v + 128`` (offset binary).

    Under this project's convention the result reads as ``(v + 0.5) / 127.5``: the exact
    int8 codes are kept at the cost of half an LSB of DC offset. Returns
    ``(cu8 uint8 array, description)``.
    """
    if isinstance(buf, np.ndarray):
        v = buf.reshape(-1)
        if v.dtype != np.int8:
            raise ValueError(f"ci8 array must have dtype int8, got {v.dtype}")
    else:
        v = np.frombuffer(buf, dtype=np.int8)
    _check_even(v.size, "ci8 values")
    return (v.view(np.uint8) ^ np.uint8(0x80)), "ci8 -> cu8: u = v + 128 (lossless)"
