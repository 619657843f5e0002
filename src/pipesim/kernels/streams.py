"""Counter-based random streams, all ``@njit``.

A stream is a ``uint64`` state advanced by SplitMix64. Streams are derived by
hashing (seed, trial, key), never by sharing a generator, so the numbers a deal
uses depend only on the seed, the trial and the deal's own key: not on thread
count, block sizes or the other deals. Each draw takes a state and returns
``(state, value)``; the samplers of :mod:`pipesim.kernels.samplers` build on these.
"""

from __future__ import annotations

import numpy as np

from pipesim.kernels.jit import jit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S11 = np.uint64(11)
KEY_MULT = np.uint64(0xD1B54A32D192ED03)
TWO_M53 = 1.0 / 9007199254740992.0


@jit
def mix(z: np.uint64) -> np.uint64:
    """SplitMix64 finaliser: a bijective hash of 64 bits."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@jit
def derive(state: np.uint64, key: np.uint64) -> np.uint64:
    """Start a new stream from a parent state and a key (a trial, deal or stage number).

    The parent is itself a hash output, so one finaliser round on (parent + key
    times an odd constant) separates the children; the result's top 53 bits can
    serve directly as one uniform (see :func:`to_unit`).
    """
    return mix(state + key * KEY_MULT)


@jit
def branch(state: np.uint64, key: int) -> np.uint64:
    """A child stream of a hashed state for a small key (a stage number, a draw's role).

    Only an add and a multiply: the child's first draw mixes, and children of one
    parent start at offsets ``key * K`` that no short run of ``+ GOLDEN`` steps joins.
    """
    return state + np.uint64(key) * KEY_MULT


@jit
def to_unit(bits: np.uint64) -> float:
    """The top 53 bits of a hash as a uniform in [0, 1)."""
    return float(bits >> _S11) * TWO_M53


@jit
def uniform(state: np.uint64) -> tuple[np.uint64, float]:
    """Draw U in [0, 1) with 53 random bits."""
    state = state + GOLDEN
    return state, float(mix(state) >> _S11) * TWO_M53


@jit
def uniform_open(state: np.uint64) -> tuple[np.uint64, float]:
    """Draw U in (0, 1), safe for logarithms."""
    state = state + GOLDEN
    return state, (float(mix(state) >> _S11) + 0.5) * TWO_M53


def seed_bits(seed: int) -> np.uint64:
    """The user's seed as the kernels' 64-bit seed (any Python int; negatives wrap)."""
    return np.uint64(int(seed) % (1 << 64))
