"""Covering location models, solved exactly with HiGHS through :func:`scipy.optimize.milp`.

* :func:`max_cover` — the maximal covering location problem (MCLP; Church & ReVelle 1974): at most
  ``p`` sites covering the most weight.
* :func:`set_cover` — the location set covering problem (LSCP; Toregas et al. 1971): the fewest
  sites covering everything a site can cover.

Both take a boolean community × candidate matrix. Before solving, communities reached by the same
candidates are merged and candidates whose communities another candidate serves as a superset
of are dropped (neither changes the optimum). City-sized MCLP instances are solved through their
LP relaxation: reduced-cost fixing against a known feasible set leaves the integer program only
the few candidates that could still improve on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from urbanunits.errors import DataError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = ["Cover", "max_cover", "set_cover"]

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Cover:
    """Sites chosen by a covering model.

    Attributes
    ----------
    sites
        Chosen candidate positions, in rank order: each adds the most newly covered weight
        given the ones before it.
    gain
        Weight newly covered by each site, in that order (they add up to ``objective``).
    covered
        Community positions newly covered by each site, in that order.
    objective
        Total weight covered.
    optimal
        Whether the solver proved the set optimal (false after a time limit).
    """

    sites: NDArray[np.intp]
    gain: NDArray[np.float64]
    covered: list[NDArray[np.intp]]
    objective: float
    optimal: bool


def _ranked(A: sp.csc_array, weight: NDArray[np.float64], chosen: NDArray[np.intp],
            optimal: bool, *, keep_unweighted: bool = False) -> Cover:
    """Order chosen sites by marginal gain; drop sites that add nothing.

    With ``keep_unweighted`` a site that newly covers only communities of weight 0 is kept
    (set covering must reach them too); otherwise it is dropped.
    """
    left = [int(j) for j in chosen]
    col = {j: A.indices[A.indptr[j]:A.indptr[j + 1]] for j in left}
    done = np.zeros(A.shape[0], dtype=bool)
    sites, gains, covered = [], [], []
    while left:
        new = [col[j][~done[col[j]]] for j in left]
        g = [float(weight[c].sum()) for c in new]
        k = max(range(len(left)), key=lambda i: (g[i], len(new[i]), -left[i]))
        if len(new[k]) == 0 or (g[k] <= 0 and not keep_unweighted):
            break
        sites.append(left.pop(k))
        gains.append(g[k])
        covered.append(np.sort(new[k]).astype(np.intp))
        done[new[k]] = True
    return Cover(np.asarray(sites, dtype=np.intp), np.asarray(gains, dtype=np.float64), covered,
                 float(np.sum(gains)), optimal)


def _matrix(cover: sp.spmatrix | sp.sparray) -> sp.csr_array:
    A = sp.csr_array(cover, dtype=np.float64)
    A.eliminate_zeros()  # a stored False is no cover
    return A


def _merge_rows(A: sp.csr_array, w: NDArray[np.float64]
                ) -> tuple[sp.csr_array, NDArray[np.float64]]:
    """Communities reached by the same candidates become one row with their weights summed."""
    A = sp.csr_array(A)
    A.sort_indices()
    keys = np.array([A.indices[A.indptr[i]:A.indptr[i + 1]].tobytes()
                     for i in range(A.shape[0])], dtype=object)
    uniq, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    summed = np.bincount(inverse.ravel(), weights=w, minlength=len(uniq)).astype(np.float64)
    return A[first], summed


def _subsets(B: sp.csr_array, *, drop: str) -> NDArray[np.bool_]:
    """Rows of ``B`` to drop where one row's set lies inside another's.

    ``drop="inner"`` marks the row inside (of equal sets, all but the first) and empty rows;
    ``drop="outer"`` marks the row around it (of equal sets, all but the first).
    """
    Bi = sp.csr_array(B, dtype=np.int32)
    size = np.diff(Bi.indptr)
    C = (Bi @ Bi.T).tocoo()
    r, c = C.row, C.col  # r ⊆ c where the overlap is all of r
    inside = (r != c) & (C.data == size[r]) & ((size[c] > size[r]) | (c < r))
    out = size == 0 if drop == "inner" else np.zeros(len(size), dtype=bool)
    out[(r if drop == "inner" else c)[inside]] = True
    return out


def _useful_columns(A: sp.csr_array) -> NDArray[np.bool_]:
    """Candidates whose communities no other candidate serves as a superset of.

    Replacing a dominated candidate by its dominator never loses coverage, so the covering
    models need only the others: this is what makes city-sized instances quick to solve.
    """
    return ~_subsets(sp.csr_array(A.T), drop="inner")


def _solve(c: NDArray[np.float64], A: sp.csr_array, lb: NDArray[np.float64],
           ub: NDArray[np.float64], integrality: NDArray[np.int_], time_limit_s: float
           ) -> tuple[NDArray[np.float64], bool]:
    res = milp(c, constraints=LinearConstraint(A, lb, ub), integrality=integrality,
               bounds=Bounds(0, 1), options={"time_limit": time_limit_s, "mip_rel_gap": 0.0,
                                              "disp": False})
    if res.x is None:
        raise DataError("sites", f"the covering model could not be solved ({res.message})",
                        "raise sites.time_limit_s or lower sites.max_sites")
    return np.round(res.x), bool(res.status == 0)


def max_cover(cover: sp.spmatrix | sp.sparray, weight: ArrayLike, *, p: int,
              time_limit_s: float = 60.0) -> Cover:
    """Maximal covering location problem: at most ``p`` sites covering the most weight.

    maximise Σ wᵢ yᵢ subject to yᵢ ≤ Σⱼ aᵢⱼ xⱼ, Σⱼ xⱼ ≤ p, xⱼ ∈ {0, 1}, 0 ≤ yᵢ ≤ 1. The
    yᵢ need not be declared integer: for integer x the best yᵢ is min(1, Σⱼ aᵢⱼ xⱼ).

    Parameters
    ----------
    cover
        Boolean community × candidate matrix: candidate j would serve community i.
    weight
        Weight of each community (residents not yet served); ≤ 0 counts nothing.
    p
        Most sites to choose.
    time_limit_s
        Solver time limit (s).

    Returns
    -------
    Cover
        The chosen sites, ranked; sites that add nothing are left out.
    """
    A = _matrix(cover)
    w = np.nan_to_num(np.asarray(weight, dtype=np.float64)).clip(min=0.0)
    m = A.shape[1]
    rows = np.flatnonzero((w > 0) & (np.diff(A.indptr) > 0))
    if len(rows) == 0 or m == 0:
        return _ranked(sp.csc_array(A), w, np.empty(0, dtype=np.intp), True)
    sub, wk = _merge_rows(A[rows], w[rows])
    cols = np.flatnonzero(_useful_columns(sub))
    chosen, optimal = _mclp(sp.csr_array(sub[:, cols]), wk, p, time_limit_s)
    return _ranked(sp.csc_array(A), w, cols[chosen].astype(np.intp), optimal)


def _mclp_model(A: sp.csr_array, w: NDArray[np.float64], p: int
                ) -> tuple[NDArray[np.float64], sp.csr_array, NDArray[np.float64]]:
    """Objective, constraint matrix and upper bounds of the MCLP (x first, then y)."""
    k, m = A.shape
    cons = sp.vstack([sp.hstack([-A, sp.eye_array(k)]),
                      sp.hstack([sp.csr_array(np.ones((1, m))), sp.csr_array((1, k))])]).tocsr()
    return (np.concatenate([np.zeros(m), -w]), cons,
            np.concatenate([np.zeros(k), [float(p)]]))


def _greedy(A: sp.csr_array, w: NDArray[np.float64], p: int) -> tuple[list[int], float]:
    """p greedy picks and their weight: a feasible set whose value bounds variable fixing."""
    At = sp.csr_array(A.T)
    left = w.copy()
    picks: list[int] = []
    total = 0.0
    for _ in range(p):
        gain = At @ left
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        picks.append(j)
        total += float(gain[j])
        left[At.indices[At.indptr[j]:At.indptr[j + 1]]] = 0.0
    return picks, total


def _mclp(A: sp.csr_array, w: NDArray[np.float64], p: int, time_limit_s: float
          ) -> tuple[NDArray[np.intp], bool]:
    """Exact MCLP: the LP relaxation first, then the integer program on what it leaves open.

    The LP relaxation (interior point with crossover) gives an upper bound and reduced costs.
    A candidate whose reduced cost shows that any solution using it covers no more than a known
    feasible set (the greedy one) cannot be in a strictly better solution and is fixed to 0
    (reduced-cost fixing). The integer program then runs on the candidates left; if it finds
    nothing better (or none are left), no set beats the greedy one, which is then optimal.
    """
    k, m = A.shape
    c, cons, ub = _mclp_model(A, w, p)
    lp = linprog(c, A_ub=cons, b_ub=ub, bounds=(0, 1), method="highs-ipm")
    if lp.status != 0:  # pragma: no cover - the model is always feasible and bounded
        x, optimal = _solve(c, cons, np.full(k + 1, -np.inf), ub, np.concatenate(
            [np.ones(m, dtype=np.int_), np.zeros(k, dtype=np.int_)]), time_limit_s)
        return np.flatnonzero(x[:m] > 0.5).astype(np.intp), optimal
    x = lp.x[:m]
    if np.all((x < 1e-9) | (x > 1 - 1e-9)):
        return np.flatnonzero(x > 0.5).astype(np.intp), True
    picks, best = _greedy(A, w, p)
    # A better known set: the candidates the LP takes whole, completed by the best choice among
    # those it takes in part (a small integer program). It is only a bound for the fixing below.
    ones = np.flatnonzero(x > 1 - 1e-9)
    part = np.flatnonzero((x > 1e-9) & (x <= 1 - 1e-9))
    if len(ones) <= p and len(part):
        left = np.where(np.asarray(A[:, ones].sum(axis=1)).ravel() > 0, 0.0, w)
        sub = sp.csr_array(A[:, part])
        c2, cons2, ub2 = _mclp_model(sub, left, p - len(ones))
        x2, _ = _solve(c2, cons2, np.full(k + 1, -np.inf), ub2, np.concatenate(
            [np.ones(len(part), dtype=np.int_), np.zeros(k, dtype=np.int_)]), time_limit_s)
        guess = [*ones.tolist(), *part[x2[:len(part)] > 0.5].tolist()]
        value = float(w[np.asarray(A[:, guess].sum(axis=1)).ravel() > 0].sum())
        if value > best:
            picks, best = guess, value
    tol = 1e-7 * max(1.0, float(w.sum()))
    reduced = np.asarray(lp.lower.marginals, dtype=np.float64)[:m]
    # min form: any solution with x_j = 1 has objective ≥ lp.fun + reduced_j
    keep = np.flatnonzero(lp.fun + reduced < -best + tol)
    if len(keep) == 0:
        return np.asarray(sorted(picks), dtype=np.intp), True
    sub = A[:, keep]
    rows = np.flatnonzero(np.diff(sp.csr_array(sub).indptr) > 0)
    sub = sp.csr_array(sub[rows])
    c, cons, ub = _mclp_model(sub, w[rows], p)
    kk, mm = sub.shape
    x, optimal = _solve(c, cons, np.full(kk + 1, -np.inf), ub, np.concatenate(
        [np.ones(mm, dtype=np.int_), np.zeros(kk, dtype=np.int_)]), time_limit_s)
    logger.debug("MCLP: %d of %d candidates left after reduced-cost fixing", mm, m)
    if float(w[rows] @ x[mm:]) <= best:
        return np.asarray(sorted(picks), dtype=np.intp), optimal
    return keep[x[:mm] > 0.5].astype(np.intp), optimal


def set_cover(cover: sp.spmatrix | sp.sparray, weight: ArrayLike, *,
              time_limit_s: float = 60.0) -> Cover:
    """Location set covering problem: fewest sites covering every coverable community.

    minimise Σⱼ xⱼ subject to Σⱼ aᵢⱼ xⱼ ≥ 1 for every community with a candidate in reach.

    Parameters
    ----------
    cover
        Boolean community × candidate matrix.
    weight
        Weight of each community, for the ranking (communities with weight ≤ 0 must be
        covered too: every community counts).
    time_limit_s
        Solver time limit (s).

    Returns
    -------
    Cover
        The chosen sites, ranked by the weight each adds.
    """
    A = _matrix(cover)
    w = np.nan_to_num(np.asarray(weight, dtype=np.float64)).clip(min=0.0)
    rows = np.flatnonzero(np.diff(A.indptr) > 0)
    if len(rows) == 0:
        return _ranked(sp.csc_array(A), w, np.empty(0, dtype=np.intp), True)
    # A community reached by a subset of another's candidates is covered whenever that one is:
    # only the first constraint is needed. Then candidates dominated on what remains go.
    sub = _merge_rows(A[rows], w[rows])[0]
    sub = sub[~_subsets(sub, drop="outer")]
    cols = np.flatnonzero(_useful_columns(sub))
    sub = sp.csr_array(sub[:, cols])
    k, mc = sub.shape
    x, optimal = _solve(np.ones(mc), sub, np.ones(k), np.full(k, np.inf),
                        np.ones(mc, dtype=np.int_), time_limit_s)
    return _ranked(sp.csc_array(A), w, cols[x > 0.5].astype(np.intp), optimal,
                   keep_unweighted=True)
