"""The samplers the kernels need, all ``@njit``: each takes a stream state, returns (state, value).

Exact samplers only: ziggurats for the normal and the exponential, strip tables
for gamma dwell times (conditional on an age), Marsaglia-Tsang for Beta and Gamma
parameter draws, inversion for Poisson counts. Streams: :mod:`pipesim.kernels.streams`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipesim.kernels.jit import jit
from pipesim.kernels.streams import GOLDEN, TWO_M53, mix, to_unit, uniform, uniform_open


def _ziggurat(
    r: float, v: float, f: Any, f_inv: Any, n: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Layer edges x[0..n] and heights f(x) of a ziggurat (Marsaglia and Tsang, 2000)."""
    x = np.empty(n + 1)
    x[0] = v / f(r)
    x[1] = r
    for i in range(1, n - 1):
        x[i + 1] = f_inv(v / x[i] + f(x[i]))
    x[n] = 0.0
    return x, np.array([f(xi) for xi in x])


# 256-layer ziggurats for the standard normal (right half) and the exponential.
_NR = 3.6541528853610088
NORMAL_LAYERS, _ZN_F = _ziggurat(
    _NR,
    _NR * math.exp(-0.5 * _NR * _NR) + math.sqrt(math.pi / 2) * math.erfc(_NR / math.sqrt(2)),
    lambda x: math.exp(-0.5 * x * x),
    lambda y: math.sqrt(-2.0 * math.log(y)),
)
_ER = 7.69711747013104972
EXPONENTIAL_LAYERS, _ZE_F = _ziggurat(
    _ER, (_ER + 1.0) * math.exp(-_ER), lambda x: math.exp(-x), lambda y: -math.log(y)
)
_LOW8 = np.uint64(0xFF)
_S8 = np.uint64(8)
_S11 = np.uint64(11)
_ONE = np.uint64(1)
# Gamma strip tables: 1024 strips, picked by the low 10 bits of a hash; bits 10-36
# place a point in the strip and bits 37-63 are its accept test's uniform.
_STRIP_MASK = np.uint64(1023)
_S10 = np.uint64(10)
_S37 = np.uint64(37)
_M27 = np.uint64((1 << 27) - 1)
_TWO_M27 = 1.0 / (1 << 27)
_TWO_P21 = float(1 << 21)
_TWO_M21 = 1.0 / (1 << 21)


@jit
def exponential(state: np.uint64) -> tuple[np.uint64, float]:
    """Draw a standard exponential (ziggurat: one hash and a table look-up, mostly)."""
    while True:
        state = state + GOLDEN
        z = mix(state)
        i = int(z & _LOW8)
        x = float(z >> _S11) * TWO_M53 * EXPONENTIAL_LAYERS[i]
        if x < EXPONENTIAL_LAYERS[i + 1]:
            return state, x
        if i == 0:
            state, u = uniform_open(state)
            return state, _ER - math.log(u)
        state, u = uniform(state)
        if _ZE_F[i] + u * (_ZE_F[i + 1] - _ZE_F[i]) < math.exp(-x):
            return state, x


@jit
def normal(state: np.uint64) -> tuple[np.uint64, float]:
    """Draw a standard normal (ziggurat: one hash and a table look-up, mostly)."""
    while True:
        state = state + GOLDEN
        z = mix(state)
        i = int(z & _LOW8)
        sign = 1.0 if ((z >> _S8) & _ONE) == _ONE else -1.0
        x = float(z >> _S11) * TWO_M53 * NORMAL_LAYERS[i]
        if x < NORMAL_LAYERS[i + 1]:
            return state, sign * x
        if i == 0:
            while True:
                state, u1 = uniform_open(state)
                state, u2 = uniform_open(state)
                xx = -math.log(u1) / _NR
                if -2.0 * math.log(u2) > xx * xx:
                    return state, sign * (_NR + xx)
        state, u = uniform(state)
        if _ZN_F[i] + u * (_ZN_F[i + 1] - _ZN_F[i]) < math.exp(-0.5 * x * x):
            return state, sign * x


@jit
def gamma_mt(state: np.uint64, d: float, c: float) -> tuple[np.uint64, float]:
    """Marsaglia-Tsang for Gamma(d + 1/3, 1), d >= 2/3, with ``c = 1/sqrt(9 d)`` given."""
    while True:
        state, x = normal(state)
        v = 1.0 + c * x
        if v <= 0.0:
            continue
        v = v * v * v
        state, u = uniform_open(state)
        x2 = x * x
        if u < 1.0 - 0.0331 * x2 * x2:
            return state, d * v
        if math.log(u) < 0.5 * x2 + d * (1.0 - v + math.log(v)):
            return state, d * v


@jit
def gamma_c(shape: float) -> float:
    """The Marsaglia-Tsang constant c for ``shape`` (shapes below 1 are boosted by 1)."""
    return 1.0 / math.sqrt(9.0 * ((shape if shape >= 1.0 else shape + 1.0) - 1.0 / 3.0))


@jit
def gamma_fast(state: np.uint64, shape: float, c: float) -> tuple[np.uint64, float]:
    """Draw Gamma(shape, 1) given ``c = gamma_c(shape)`` (kernels precompute it)."""
    if shape >= 1.0:
        return gamma_mt(state, shape - 1.0 / 3.0, c)
    state, u = uniform_open(state)
    state, x = gamma_mt(state, shape + 2.0 / 3.0, c)
    return state, x * u ** (1.0 / shape)


@jit
def gamma(state: np.uint64, shape: float) -> tuple[np.uint64, float]:
    """Draw Gamma(shape, 1) (Marsaglia-Tsang; boosted by U^(1/shape) below 1)."""
    return gamma_fast(state, shape, gamma_c(shape))


@jit
def gamma_tail(state: np.uint64, shape: float, a: float) -> tuple[np.uint64, float]:
    """Draw Gamma(shape, 1) conditioned on exceeding ``a`` (exact rejection samplers).

    Well below the mean, plain rejection (few tries). Above it, a shifted
    exponential proposal: rate ``lam`` near the tail's hazard for shape >= 1,
    rate 1 for shape < 1 (then the density ratio ``(x/a)^(shape-1)`` is <= 1).
    Acceptance tests compare with ``-E`` (E exponential) rather than ``log(U)``.
    """
    if a <= 0.0:
        return gamma(state, shape)
    if a < 0.6 * shape:
        while True:
            state, x = gamma(state, shape)
            if x > a:
                return state, x
    if shape < 1.0:
        while True:
            state, e = exponential(state)
            x = a + e
            state, e2 = exponential(state)
            if -e2 <= (shape - 1.0) * math.log(x / a):
                return state, x
    b = a - shape
    lam = (b + math.sqrt(b * b + 4.0 * a)) / (2.0 * a)
    if lam >= 1.0:
        state, e = exponential(state)
        return state, a + e
    # f/g is proportional to x^(shape-1) exp(-(1-lam) x); its maximum on x >= a:
    xmax = (shape - 1.0) / (1.0 - lam)
    if xmax < a:
        xmax = a
    while True:
        state, e = exponential(state)
        x = a + e / lam
        state, e2 = exponential(state)
        if -e2 <= (shape - 1.0) * math.log(x / xmax) - (1.0 - lam) * (x - xmax):
            return state, x


@jit
def normal_tail(state: np.uint64, z0: float) -> tuple[np.uint64, float]:
    """Draw a standard normal conditioned on exceeding ``z0`` (Robert's sampler above 0)."""
    if z0 < 0.0:
        while True:
            state, z = normal(state)
            if z > z0:
                return state, z
    alpha = 0.5 * (z0 + math.sqrt(z0 * z0 + 4.0))
    while True:
        state, e = exponential(state)
        z = z0 + e / alpha
        state, e2 = exponential(state)
        d = z - alpha
        if e2 >= 0.5 * d * d:
            return state, z


@jit(inline=True)
def strip_first(
    h: np.uint64, j_lo: int, edges: np.ndarray, ratio: np.ndarray, t: int
) -> tuple[Any, float, float, float]:
    """A draw's first strip and point from one hash: (strip j, x, w, squeeze ratio of strip j).

    The point is accepted at once when ``w <= ratio`` (the squeeze).

    A fresh draw (``j_lo`` 0): the low 10 bits pick one of the 1024 strips, bits 10-36
    place the point in it and bits 37-63 are the accept test's uniform. An aged draw:
    a 53-bit uniform times the strips left picks the strip, and its fractional part
    (43 bits or more) gives the point (21 bits) and the accept uniform (the rest).
    ``j`` may be the last strip (then x and the squeeze are meaningless: the caller
    uses the tail sampler). No branches and no boolean in the result (numba's tuples
    of booleans defeat LLVM's vectoriser), so that vector loops can replay it.
    """
    n = ratio.shape[1]
    y = to_unit(h) * (n - j_lo)
    jf = math.floor(y)
    q = (y - jf) * _TWO_P21
    qf = math.floor(q)
    aged = j_lo > 0
    j = j_lo + np.int64(jf) if aged else np.int64(h & _STRIP_MASK)
    v = (qf + 0.5) * _TWO_M21 if aged else (float((h >> _S10) & _M27) + 0.5) * _TWO_M27
    w = q - qf if aged else float(h >> _S37) * _TWO_M27
    jj = min(j, n - 2)
    x = edges[t, jj] + v * (edges[t, jj + 1] - edges[t, jj])
    return j, x, w, ratio[t, jj]


@jit(inline=True)
def gamma_strips(
    state: np.uint64,
    shape: float,
    edges: np.ndarray,
    ratio: np.ndarray,
    lf_max: np.ndarray,
    t: int,
    a: float,
    j_lo: int,
) -> tuple[np.uint64, float]:
    """Draw Gamma(shape, 1) conditioned on exceeding ``a`` (0: unconditioned) from strip table t.

    See :mod:`pipesim.prepare.dwell_tables`: a uniform strip, a uniform point in it, and an
    exact accept test (squeeze first), retried inside the same strip until accepted,
    so that every strip keeps its probability. ``j_lo`` is the strip holding ``a``
    (the caller precomputes it): the strips below are skipped and a point of that
    strip below ``a`` rejects the whole draw. One hash gives the strip and the first
    point (:func:`strip_first`); :mod:`pipesim.kernels.winners_only` replays those first
    points in vector loops.
    """
    n = ratio.shape[1]
    while True:
        state = state + GOLDEN
        j, x, w, squeeze = strip_first(mix(state), j_lo, edges, ratio, t)
        squeezed = w <= squeeze
        if j >= n - 1:
            lower = edges[t, n - 1]
            return gamma_tail(state, shape, lower if lower > a else a)
        if j == 0 and shape < 1.0:
            squeezed = False
            w = -1.0  # the first strip of a shape below 1 has its own sampler below
        if not squeezed and not (
            w > 0.0 and math.log(w) + lf_max[t, j] <= (shape - 1.0) * math.log(x) - x
        ):
            # An exact draw from the density restricted to strip j, retried inside it.
            while True:
                state, v = uniform_open(state)
                state, w = uniform(state)
                if j == 0 and shape < 1.0:
                    x = edges[t, 1] * v ** (1.0 / shape)
                    if w <= math.exp(-x):
                        break
                    continue
                x = edges[t, j] + v * (edges[t, j + 1] - edges[t, j])
                if w <= ratio[t, j]:
                    break
                if w > 0.0 and math.log(w) + lf_max[t, j] <= (shape - 1.0) * math.log(x) - x:
                    break
        # Then the condition X > a, by rejecting the whole draw.
        if x > a:
            return state, x


_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split so that n * _LN2_HI is exact for |n| < 2**20
_LN2_LO = 1.9082149292705877e-10
_POW2 = np.array([2.0**e for e in range(-1022, 1024)])
_EXP_COEF = tuple(1.0 / math.factorial(i) for i in range(13))


@jit(inline=True)
def exp_poly(x: float) -> float:
    """e**x within 2 ulp for |x| < 700 (beyond: clamped), with no call: vector loops use it.

    x = n ln 2 + r with |r| <= ln(2)/2; e**r by its Taylor polynomial of degree 12
    (remainder < 2e-16 relative); 2**n from a table.
    """
    n = math.floor(x * _LOG2E + 0.5)
    r = (x - n * _LN2_HI) - n * _LN2_LO
    c = _EXP_COEF
    p = c[12]
    p = p * r + c[11]
    p = p * r + c[10]
    p = p * r + c[9]
    p = p * r + c[8]
    p = p * r + c[7]
    p = p * r + c[6]
    p = p * r + c[5]
    p = p * r + c[4]
    p = p * r + c[3]
    p = p * r + c[2]
    p = p * r + c[1]
    p = p * r + c[0]
    e: int = min(max(int(n), -1022), 1023)
    return p * _POW2[e + 1022]


@jit
def beta(state: np.uint64, a: float, b: float) -> tuple[np.uint64, float]:
    """Draw Beta(a, b) as a ratio of gammas."""
    state, x = gamma(state, a)
    state, y = gamma(state, b)
    total = x + y
    if total <= 0.0:
        return state, a / (a + b)
    return state, x / total


@jit
def poisson_inverse(u: float, mu: float) -> int:
    """Return the Poisson(mu) quantile of ``u``: inversion, so it is monotone in u and mu.

    Small means search up from 0; large ones start at the mode, with the CDF
    there summed from the pmf (a few times sqrt(mu) terms), and walk from it.
    """
    if mu <= 0.0:
        return 0
    if mu < 30.0:
        p = math.exp(-mu)
        cdf = p
        k = 0
        while u >= cdf and k < 1000:
            k += 1
            p *= mu / k
            cdf += p
            if p == 0.0:
                break
        return k
    mode = math.floor(mu)
    log_pm = -mu + mode * math.log(mu) - math.lgamma(mode + 1.0)
    pm = math.exp(log_pm)
    # CDF at the mode: sum the pmf downwards until the terms stop counting.
    cdf = pm
    p = pm
    j = mode
    while j > 0:
        p *= j / mu
        j -= 1
        cdf += p
        if p < 1e-17 * cdf:
            break
    k = mode
    if u < cdf:
        p = pm
        while k > 0:
            below = cdf - p
            if u >= below:
                break
            cdf = below
            p *= k / mu
            k -= 1
        return k
    p = pm
    limit = mode + 60.0 * math.sqrt(mu) + 100.0
    while u >= cdf and k < limit:
        k += 1
        p *= mu / k
        cdf += p
        if p == 0.0:
            break
    return k
