"""Deal keys of integer ids without making a string per deal (numba).

A deal's key is pandas' ``hash_array`` of its id written as text: SipHash-2-4
of the UTF-8 text with pandas' default key ``"0123456789123456"``, then the
SplitMix64 finaliser. For integer ids the decimal text is written straight into
SipHash's 64-bit words, so a 10-million-deal book is keyed in a fraction of a
second with the very same keys.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from pipesim.kernels.jit import jit
from pipesim.kernels.streams import mix

_KEY = b"0123456789123456"  # pandas.core.util.hashing._default_hash_key
K0 = np.uint64(int.from_bytes(_KEY[:8], "little"))
K1 = np.uint64(int.from_bytes(_KEY[8:], "little"))
_C0 = np.uint64(0x736F6D6570736575)
_C1 = np.uint64(0x646F72616E646F6D)
_C2 = np.uint64(0x6C7967656E657261)
_C3 = np.uint64(0x7465646279746573)
_FF = np.uint64(0xFF)
_TEN = np.uint64(10)
_ZERO_CHAR = np.uint64(48)
_MINUS_CHAR = np.uint64(45)
_S8 = np.uint64(8)
_S56 = np.uint64(56)
_S64 = np.uint64(64)


@jit(inline=True)
def _rotl(x: np.uint64, b: np.uint64) -> np.uint64:
    return (x << b) | (x >> (_S64 - b))


@jit(inline=True)
def _rounds(
    v0: np.uint64, v1: np.uint64, v2: np.uint64, v3: np.uint64, n: int
) -> tuple[np.uint64, np.uint64, np.uint64, np.uint64]:
    for _ in range(n):
        v0 += v1
        v1 = _rotl(v1, np.uint64(13))
        v1 ^= v0
        v0 = _rotl(v0, np.uint64(32))
        v2 += v3
        v3 = _rotl(v3, np.uint64(16))
        v3 ^= v2
        v0 += v3
        v3 = _rotl(v3, np.uint64(21))
        v3 ^= v0
        v2 += v1
        v1 = _rotl(v1, np.uint64(17))
        v1 ^= v2
        v2 = _rotl(v2, np.uint64(32))
    return v0, v1, v2, v3


@jit(inline=True)
def _block(
    v0: np.uint64, v1: np.uint64, v2: np.uint64, v3: np.uint64, m: np.uint64
) -> tuple[np.uint64, np.uint64, np.uint64, np.uint64]:
    v3 ^= m
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 2)
    v0 ^= m
    return v0, v1, v2, v3


@jit
def siphash24(w0: np.uint64, w1: np.uint64, w2: np.uint64, length: int) -> np.uint64:
    """SipHash-2-4 (pandas' key) of ``length`` <= 23 bytes held little-endian in w0, w1, w2.

    Bytes past ``length`` must be zero.
    """
    v0 = K0 ^ _C0
    v1 = K1 ^ _C1
    v2 = K0 ^ _C2
    v3 = K1 ^ _C3
    full = length // 8
    if full >= 1:
        v0, v1, v2, v3 = _block(v0, v1, v2, v3, w0)
    if full >= 2:
        v0, v1, v2, v3 = _block(v0, v1, v2, v3, w1)
    tail = w0 if full == 0 else (w1 if full == 1 else w2)
    v0, v1, v2, v3 = _block(v0, v1, v2, v3, tail | ((np.uint64(length) & _FF) << _S56))
    v2 ^= _FF
    v0, v1, v2, v3 = _rounds(v0, v1, v2, v3, 4)
    return v0 ^ v1 ^ v2 ^ v3


@jit(parallel=True)
def int_text_keys(values: np.ndarray, out: np.ndarray) -> None:
    """``out[i]`` = pandas' hash of ``str(values[i])`` (int64 values)."""
    for i in prange(values.shape[0]):
        v = values[i]
        neg = v < 0
        # Magnitude as unsigned (also for the most negative int64).
        mag = np.uint64(-(v + 1)) + np.uint64(1) if neg else np.uint64(v)
        digits = 1
        t = mag
        while t >= _TEN:
            t //= _TEN
            digits += 1
        first = 1 if neg else 0
        w0 = _MINUS_CHAR if neg else np.uint64(0)
        w1 = np.uint64(0)
        w2 = np.uint64(0)
        t = mag
        for j in range(digits):
            p = first + digits - 1 - j
            byte = (_ZERO_CHAR + t % _TEN) << (_S8 * np.uint64(p % 8))
            if p < 8:
                w0 |= byte
            elif p < 16:
                w1 |= byte
            else:
                w2 |= byte
            t //= _TEN
        out[i] = mix(siphash24(w0, w1, w2, first + digits))
