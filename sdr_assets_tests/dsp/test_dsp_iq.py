"""cu8 convention (pyrtlsdr: (u - 127.5) / 127.5) and SigMF datatype conversions."""

import numpy as np
import pytest

from sdr_assets.dsp.iq import cf32_to_cu8, ci8_to_cu8, ci16_to_cu8, complex64_to_cu8, cu8_to_complex64


def test_convention_endpoints_and_midpoint():
    x = cu8_to_complex64(bytes([0, 255, 255, 0, 127, 128]))
    assert x.dtype == np.complex64
    np.testing.assert_allclose(x, [-1 + 1j, 1 - 1j, (-0.5 + 0.5j) / 127.5], atol=1e-7)
    # the unreachable mid-code 127.5 is exactly zero: the two codes around it are symmetric
    assert x[2].real == -x[2].imag
    assert complex64_to_cu8(np.zeros(1, np.complex64)).tolist() == [128, 128]  # round half up


def test_first_byte_is_i_second_is_q():
    x = cu8_to_complex64(np.array([255, 0], dtype=np.uint8))
    assert x[0].real == pytest.approx(1.0) and x[0].imag == pytest.approx(-1.0)


def test_round_trip_every_code_exact():
    codes = np.arange(256, dtype=np.uint8)
    buf = np.stack([codes, codes[::-1]], axis=1).reshape(-1)
    back = complex64_to_cu8(cu8_to_complex64(buf))
    assert back.dtype == np.uint8
    assert np.array_equal(back, buf)


def test_complex64_to_cu8_clips_and_scales():
    x = np.array([2 + 0j, -3j, 0.5 + 0.5j], dtype=np.complex64)
    assert complex64_to_cu8(x).tolist() == [255, 128, 128, 0, 191, 191]
    assert complex64_to_cu8(x, scale=0.5).tolist()[:2] == [255, 128]
    with pytest.raises(ValueError, match="complex"):
        complex64_to_cu8(np.zeros(4, np.float32))


def test_odd_length_is_a_clear_value_error():
    with pytest.raises(ValueError, match="odd"):
        cu8_to_complex64(b"\x00\x01\x02")


def test_accepts_bytes_and_arrays_alike():
    buf = bytes(range(64))
    assert np.array_equal(cu8_to_complex64(buf), cu8_to_complex64(np.frombuffer(buf, np.uint8)))


def test_ci16_full_scale_maps_to_cu8_full_scale():
    v = np.array([-32768, 32767, 0, 16384], dtype="<i2")
    u, desc = ci16_to_cu8(v.tobytes())
    assert u.tolist() == [0, 255, 128, 191] and "ci16_le" in desc
    ub, _ = ci16_to_cu8(v.astype(">i2").tobytes(), big_endian=True)
    assert np.array_equal(u, ub)


def test_cf32_scale_and_clip():
    v = np.array([-1.0, 1.0, 0.0, 2.0], dtype="<f4")
    u, desc = cf32_to_cu8(v.tobytes())
    assert u.tolist() == [0, 255, 128, 255] and "clipped" in desc
    u2, _ = cf32_to_cu8(np.array([-1 + 1j], dtype=np.complex64))
    assert u2.tolist() == [0, 255]


def test_ci8_is_lossless_offset_binary():
    v = np.array([-128, 127, 0, -1], dtype=np.int8)
    u, desc = ci8_to_cu8(v.tobytes())
    assert u.tolist() == [0, 255, 128, 127] and "lossless" in desc
    with pytest.raises(ValueError, match="odd"):
        ci8_to_cu8(b"\x00")
