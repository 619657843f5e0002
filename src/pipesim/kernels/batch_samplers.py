"""Samplers over a batch of winners, in loops that LLVM vectorises.

Each winner has its own random stream (``state[b, w]``); a batch ``w0:w1`` of
winners shares one path through the funnel (one parameter group and stage), so
each loop below applies one sampler with one set of parameters to every winner.
The exact samplers of :mod:`pipesim.kernels.samplers` start with one candidate from one
hash, accepted almost always: a loop without branches computes every winner's
candidate and whether it was accepted, and the rare others are redrawn by the
scalar sampler from the same stream, which replays the same candidate, rejects it
and goes on. So a batch gives the same numbers, bit for bit, as the scalar
sampler called winner by winner.

For LLVM to vectorise these loops, numba must tell it that the arrays do not
overlap, which it does only for the arguments of a parallel region: so callers
pass every array as its own argument of their parallel function and make the
scratch arrays (rows ``b``) outside the region. What defeats it (found by
counting gather instructions in the assembly): arrays inside tuples, arrays made
inside the region, views, numba boolean arrays and tuples holding booleans, and
a sampler with loops inlined into the region (hence :func:`redraw`, out of line).
"""

from __future__ import annotations

import math

import numpy as np

from pipesim.kernels.jit import jit
from pipesim.kernels.samplers import (
    EXPONENTIAL_LAYERS,
    NORMAL_LAYERS,
    exp_poly,
    exponential,
    normal,
    strip_first,
)
from pipesim.kernels.streams import GOLDEN, KEY_MULT, TWO_M53, branch, mix
from pipesim.kernels.tables import EXPONENTIAL, GAMMA
from pipesim.kernels.trial import VALUE_KEY, dwell

_LOW8 = np.uint64(0xFF)
_S8 = np.uint64(8)
_S11 = np.uint64(11)


@jit
def redraw(
    state: np.uint64,
    code: int,
    p1: float,
    p2: float,
    tab: int,
    edges: np.ndarray,
    ratio: np.ndarray,
    lf_max: np.ndarray,
    age: float,
    strip: int,
) -> float:
    """One dwell by the scalar sampler: for the candidates a vector loop rejected.

    Not inlined on purpose: the samplers' loops inlined into the parallel region stop
    LLVM from vectorising the loops around them.
    """
    _, x = dwell(state, code, p1, p2, tab, (edges, ratio, lf_max), age, strip)
    return x


@jit(inline=True)
def stage_dwell(
    role: int,
    code: int,
    p1: float,
    p2: float,
    tab: int,
    edges: np.ndarray,
    ratio: np.ndarray,
    lf_max: np.ndarray,
    w0: int,
    w1: int,
    aged: bool,
    age: np.ndarray,
    strip_of: np.ndarray,
    idx: np.ndarray,
    state: np.ndarray,
    dt: np.ndarray,
    bad: np.ndarray,
    b: int,
) -> None:
    """Fill dt[b, w0:w1] with winners' dwell in one stage (stream ``role`` of each winner).

    The exact samplers (exponential ziggurat, gamma strips) start with one candidate
    from one hash, accepted almost always. A vector loop computes every winner's
    candidate and whether it was accepted; the rare others are redrawn by the scalar
    sampler from the same stream, which replays the same candidate, rejects it and
    goes on: the same law, draw for draw, as the scalar sampler.
    """
    step = np.uint64(role) * KEY_MULT + GOLDEN
    if code == EXPONENTIAL:
        for w in range(w0, w1):
            z = mix(state[b, w] + step)
            i = np.int64(z & _LOW8)
            x = float(z >> _S11) * TWO_M53 * EXPONENTIAL_LAYERS[i]
            dt[b, w] = p1 * x
            bad[b, w] = np.uint8(x >= EXPONENTIAL_LAYERS[i + 1])
        for w in range(w0, w1):
            if bad[b, w]:
                _, e = exponential(branch(state[b, w], role))
                dt[b, w] = p1 * e
        return
    if code == GAMMA and p1 >= 1.0:
        last = ratio.shape[1] - 1
        if aged:
            for w in range(w0, w1):
                d = idx[b, w]
                h = mix(state[b, w] + step)
                j, x, u, squeeze = strip_first(h, strip_of[d], edges, ratio, tab)
                a = age[d]
                dt[b, w] = max(p2 * x - a, 0.0)
                bad[b, w] = np.uint8(j >= last) | np.uint8(u > squeeze) | np.uint8(x <= a / p2)
        else:
            for w in range(w0, w1):
                j, x, u, squeeze = strip_first(mix(state[b, w] + step), 0, edges, ratio, tab)
                dt[b, w] = p2 * x
                bad[b, w] = np.uint8(j >= last) | np.uint8(u > squeeze)
        for w in range(w0, w1):
            if bad[b, w]:
                a = age[idx[b, w]] if aged else 0.0
                j_lo = strip_of[idx[b, w]] if aged else np.int64(0)  # not a literal: one signature
                dt[b, w] = redraw(
                    branch(state[b, w], role), code, p1, p2, tab, edges, ratio, lf_max, a, j_lo
                )
        return
    for w in range(w0, w1):
        a = age[idx[b, w]] if aged else 0.0
        j_lo = strip_of[idx[b, w]] if aged else np.int64(0)  # not a literal: one signature
        dt[b, w] = redraw(
            branch(state[b, w], role), code, p1, p2, tab, edges, ratio, lf_max, a, j_lo
        )


@jit(inline=True)
def winner_values(
    sigma: float,
    w0: int,
    w1: int,
    idx: np.ndarray,
    amount: np.ndarray,
    state: np.ndarray,
    value: np.ndarray,
    bad: np.ndarray,
    b: int,
    poly: bool,
) -> None:
    """Fill value[b, w0:w1]: each winner's amount times a lognormal multiplier (mean 1).

    Normal ziggurat candidates in a vector loop; the rare rejected ones redrawn by the
    scalar sampler from the same stream (see :func:`stage_dwell`). ``poly``: the
    polynomial ``exp`` that vectorises (else ``math.exp``, the scalar kernels' bits).
    """
    if sigma <= 0.0:
        for w in range(w0, w1):
            value[b, w] = amount[idx[b, w]]
        return
    step = np.uint64(VALUE_KEY) * KEY_MULT + GOLDEN
    for w in range(w0, w1):
        z = mix(state[b, w] + step)
        i = np.int64(z & _LOW8)
        sign = 1.0 if (z >> _S8) & np.uint64(1) else -1.0
        x = float(z >> _S11) * TWO_M53 * NORMAL_LAYERS[i]
        value[b, w] = sign * x
        bad[b, w] = np.uint8(x >= NORMAL_LAYERS[i + 1])
    for w in range(w0, w1):
        if bad[b, w]:
            _, value[b, w] = normal(branch(state[b, w], VALUE_KEY))
    half = 0.5 * sigma * sigma
    if poly:
        for w in range(w0, w1):
            value[b, w] = amount[idx[b, w]] * exp_poly(sigma * value[b, w] - half)
    else:
        for w in range(w0, w1):
            value[b, w] = amount[idx[b, w]] * math.exp(sigma * value[b, w] - half)


@jit(inline=True)
def time_and_value(
    gs: int,
    n_stages: int,
    code: np.ndarray,
    p1: np.ndarray,
    p2: np.ndarray,
    tab: np.ndarray,
    value_sigma: np.ndarray,
    edges: np.ndarray,
    ratio: np.ndarray,
    lf_max: np.ndarray,
    w0: int,
    w1: int,
    age: np.ndarray,
    strip_of: np.ndarray,
    amount: np.ndarray,
    idx: np.ndarray,
    state: np.ndarray,
    t: np.ndarray,
    dt: np.ndarray,
    bad: np.ndarray,
    b: int,
    poly: bool,
) -> None:
    """Winners ``w0:w1``, all in cell ``gs`` (group and stage): close day in t, value in dt.

    The first stage with each deal's age (stream 1), then each later stage fresh
    (streams 2, 3, ...), one stage for all winners at a time; then the values
    (see :func:`winner_values` for ``poly``). A winner past the horizon still gets
    its later stages drawn (no branch), which changes none of the numbers kept.
    """
    stage_dwell(
        1, code[gs], p1[gs], p2[gs], tab[gs], edges, ratio, lf_max,
        w0, w1, True, age, strip_of, idx, state, t, bad, b,
    )  # fmt: skip
    for s in range(gs + 1, gs - gs % n_stages + n_stages):
        stage_dwell(
            s - gs + 1, code[s], p1[s], p2[s], tab[s], edges, ratio, lf_max,
            w0, w1, False, age, strip_of, idx, state, dt, bad, b,
        )  # fmt: skip
        for w in range(w0, w1):
            t[b, w] += dt[b, w]
    winner_values(value_sigma[gs], w0, w1, idx, amount, state, dt, bad, b, poly)
