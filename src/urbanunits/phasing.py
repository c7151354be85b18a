"""Phasing a project library: whole packages into years under caps, exactly (HiGHS) or greedily.

The problem is a multiple knapsack with fixed assignments and a readiness rule; see
:func:`phase`. :mod:`urbanunits.programme` builds its inputs from the renewal packages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from urbanunits.errors import DataError

__all__ = ["Phasing", "ProgrammeInfeasibleError", "phase"]

logger = logging.getLogger(__name__)


class ProgrammeInfeasibleError(DataError):
    """The fixed years (计划年度) alone break a year's cap: no plan can honour them."""


@dataclass
class Phasing:
    """A plan: each package's year index (−1 = reserve) and how it was found.

    Attributes
    ----------
    year
        Year index per package (0 = first programme year; −1 = reserve).
    reason
        Why each package sits where it does.
    objective
        Σ score × (1 − discount)^k of the plan.
    bound
        Upper bound on the best objective (the solver's dual bound; the objective itself when
        proved optimal; NaN for greedy).
    gap
        (bound − objective) ÷ bound: 0 means proved optimal.
    solver
        ``"milp"`` or ``"greedy"``.
    status
        The solver's message.
    seconds
        Solve time.
    """

    year: NDArray[np.int64]
    reason: list[str]
    objective: float
    bound: float
    gap: float
    solver: str
    status: str
    seconds: float


def _milp_available() -> bool:
    try:
        from scipy.optimize import milp  # noqa: F401
    except ImportError:  # scipy < 1.9
        return False
    return True


def phase(score: ArrayLike, usage: ArrayLike, caps: ArrayLike, *,
          fixed: ArrayLike | None = None, ready: ArrayLike | None = None,
          year_discount: float = 0.1, solver: str = "milp", time_limit_s: float = 60.0,
          mip_rel_gap: float = 1e-3, names: list[str] | None = None,
          resource_names: list[str] | None = None) -> Phasing:
    """Assign whole packages to years (or reserve) maximising discounted score under caps.

    Maximise Σ_p Σ_k score_p · (1 − year_discount)^k · x_pk subject to Σ_k x_pk ≤ 1 for every
    package, Σ_p usage_pr · x_pk ≤ cap_kr for every year k and resource r, x_pk ∈ {0, 1};
    x_pk = 1 for a fixed year k, and x_p· = 0 for a package that is not ready.

    Parameters
    ----------
    score
        Score per package (P), ≥ 0.
    usage
        P × R: what each package takes of each capped resource (floor area, households, cost).
    caps
        N × R: each year's cap per resource; ``inf`` (or NaN) is no cap.
    fixed
        Year index per package fixed by the bureau (−1 = free); P values.
    ready
        Whether each package may be scheduled at all (readiness rule); P values.
    year_discount
        Share by which each later year's score is discounted.
    solver
        ``"milp"`` (HiGHS) or ``"greedy"``; ``"milp"`` falls back to greedy, with a warning,
        when :func:`scipy.optimize.milp` is unavailable.
    time_limit_s, mip_rel_gap
        HiGHS limits.
    names, resource_names
        Package and resource names for messages.

    Returns
    -------
    Phasing
        The plan and its reasons.

    Raises
    ------
    ProgrammeInfeasibleError
        When the fixed packages of one year alone exceed one of its caps.
    """
    t0 = time.perf_counter()
    s = np.asarray(score, dtype=float)
    n_p = len(s)
    u = np.asarray(usage, dtype=float).reshape(n_p, -1)
    c = np.asarray(caps, dtype=float)
    c = np.where(np.isnan(c), np.inf, c).reshape(-1, u.shape[1])
    n_y = c.shape[0]
    fx = np.full(n_p, -1, dtype=np.int64) if fixed is None else np.asarray(fixed, np.int64)
    ok = np.ones(n_p, dtype=bool) if ready is None else np.asarray(ready, dtype=bool)
    names = names or [f"#{i}" for i in range(n_p)]
    rnames = resource_names or [f"resource {r}" for r in range(u.shape[1])]
    u = np.nan_to_num(u, nan=0.0)
    year = np.full(n_p, -1, dtype=np.int64)
    reason = [""] * n_p
    value = s[:, None] * (1.0 - year_discount) ** np.arange(n_y)[None, :]

    # Fixed years first: honoured when ready, and checked against the caps.
    fixed_ok = (fx >= 0) & (fx < n_y) & ok
    for p in np.flatnonzero((fx >= 0) & ~ok):
        reason[p] = "居民意愿未达标，计划年度不执行 fixed year but not ready: reserve"
    for p in np.flatnonzero(fx >= n_y):
        reason[p] = "计划年度在规划期之后 fixed after the programme years: reserve"
    used = np.zeros_like(c)
    for p in np.flatnonzero(fixed_ok):
        year[p] = fx[p]
        used[fx[p]] += u[p]
        reason[p] = "按清单计划年度 fixed by 计划年度"
    over = used > c + 1e-9
    if over.any():
        k, r = (int(v[0]) for v in np.nonzero(over))
        who = ", ".join(names[p] for p in np.flatnonzero(fixed_ok & (fx == k)))
        raise ProgrammeInfeasibleError(
            f"programme year {k + 1}",
            f"packages fixed to it by 计划年度 ({who}) need {used[k, r]:,.0f} {rnames[r]}, "
            f"above the cap of {c[k, r]:,.0f}",
            f"raise programme.years[{k}] cap for {rnames[r]}, or move 计划年度 of some of "
            "those communities to another year")
    free = (fx < 0) & ok
    for p in np.flatnonzero((fx < 0) & ~ok):
        reason[p] = "居民意愿未达标 not ready (consent below min_consent_share): reserve"
    # A package that fits no year even alone can only be reserve: say which cap it breaks.
    fits = u[:, None, :] <= c[None, :, :] + 1e-9  # P × N × R
    fits_year = fits.all(axis=2)
    for p in np.flatnonzero(free & ~fits_year.any(axis=1)):
        r = int(np.argmax((u[p][None, :] > c + 1e-9).any(axis=0)))
        reason[p] = (f"超出各年度上限 larger than every year's cap ({u[p, r]:,.0f} > "
                     f"{np.nanmax(np.where(np.isfinite(c[:, r]), c[:, r], np.nan)):,.0f} "
                     f"{rnames[r]}): reserve")
        logger.warning("programme: %s alone needs %s, more than any year's cap: kept in reserve",
                       names[p], reason[p].split("(")[1].split(")")[0])
    cand = np.flatnonzero(free & fits_year.any(axis=1))
    room = c - used
    use_solver = solver
    if solver == "milp" and not _milp_available():
        logger.warning("scipy.optimize.milp is unavailable (scipy < 1.9): phasing by the greedy "
                       "rule, which may miss the best plan")
        use_solver = "greedy"
    bound = np.nan
    status = "ok"
    if len(cand):
        if use_solver == "milp":
            ycand, bound_c, status = _solve_milp(value[cand], u[cand], room,
                                                 fits_year[cand], time_limit_s=time_limit_s,
                                                 mip_rel_gap=mip_rel_gap)
        else:
            ycand = _greedy(value[cand], u[cand], room, fits_year[cand])
            status = "greedy"
        year[cand] = ycand
        for i, p in enumerate(cand):
            k = int(ycand[i])
            reason[p] = (f"列入第{k + 1}年 scheduled in year {k + 1}" if k >= 0
                         else "年度上限已满 no room left in any year's caps: reserve")
            if k > 0 and fits_year[p, :k].any():
                # It would fit an earlier year alone: the plan filled those years with packages
                # whose scores add up to more.
                reason[p] += (" (前几年已由合计得分更高的片区占满 earlier years hold packages "
                              "with a higher total score)")
    objective = float(sum(value[p, year[p]] for p in range(n_p) if year[p] >= 0))
    fixed_value = float(sum(value[p, year[p]] for p in np.flatnonzero(fixed_ok)))
    if use_solver == "milp":
        bound = objective if not len(cand) else fixed_value + bound_c
        gap = max(0.0, (bound - objective) / bound) if bound > 0 else 0.0
    else:
        gap = np.nan
    return Phasing(year=year, reason=reason, objective=objective, bound=float(bound),
                   gap=float(gap), solver=use_solver, status=status,
                   seconds=time.perf_counter() - t0)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence the C++ solver's debug lines on file descriptor 2 (scipy's HiGHS prints some)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real descriptor (some notebook front-ends)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _solve_milp(value: NDArray[np.float64], u: NDArray[np.float64], room: NDArray[np.float64],
                allowed: NDArray[np.bool_], *, time_limit_s: float, mip_rel_gap: float
                ) -> tuple[NDArray[np.int64], float, str]:
    """HiGHS on x[p, k] (row-major); returns year per package, the dual bound and a message."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_array

    n_p, n_y = value.shape
    n_x = n_p * n_y
    rows: list[NDArray[np.int64]] = []
    cols: list[NDArray[np.int64]] = []
    data: list[NDArray[np.float64]] = []
    ub: list[float] = []
    # one year at most per package
    idx = np.arange(n_x).reshape(n_p, n_y)
    rows.append(np.repeat(np.arange(n_p), n_y))
    cols.append(idx.ravel())
    data.append(np.ones(n_x))
    ub += [1.0] * n_p
    r0 = n_p
    for k in range(n_y):
        for r in range(u.shape[1]):
            if not np.isfinite(room[k, r]):
                continue
            nz = np.flatnonzero(u[:, r] > 0)
            # Rows scaled to a cap of 1: m², households and yuan differ by orders of magnitude.
            scale = float(room[k, r]) if room[k, r] > 0 else 1.0
            rows.append(np.full(len(nz), r0))
            cols.append(idx[nz, k])
            data.append(u[nz, r] / scale)
            ub.append(max(0.0, float(room[k, r])) / scale)
            r0 += 1
    a = coo_array((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))),
                  shape=(r0, n_x)).tocsr()
    upper = allowed.astype(float).ravel()  # a year the package cannot fit alone is closed
    with _quiet_stderr():
        res = milp(c=-value.ravel(), constraints=LinearConstraint(a, -np.inf, np.asarray(ub)),
                   integrality=np.ones(n_x), bounds=Bounds(np.zeros(n_x), upper),
                   options={"time_limit": time_limit_s, "mip_rel_gap": mip_rel_gap,
                            "disp": False, "presolve": True})
    if res.x is None:  # pragma: no cover - x = 0 is always feasible
        logger.warning("programme: HiGHS found no plan (%s); using the greedy rule", res.message)
        return _greedy(value, u, room, allowed), float("nan"), f"greedy ({res.message})"
    x = res.x.reshape(n_p, n_y) > 0.5
    year = np.where(x.any(axis=1), np.argmax(x, axis=1), -1).astype(np.int64)
    dual = getattr(res, "mip_dual_bound", None)
    bound = -float(dual) if dual is not None and np.isfinite(dual) else float(-res.fun)
    msg = "optimal" if res.status == 0 else f"stopped: {res.message}"
    if res.status != 0:
        logger.warning("programme: the solver stopped before proving its plan (%s); the plan may "
                       "differ between runs — raise programme.time_limit_s or "
                       "programme.mip_rel_gap", res.message)
    return year, max(bound, float(-res.fun)), msg


def _greedy(value: NDArray[np.float64], u: NDArray[np.float64], room: NDArray[np.float64],
            allowed: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Highest score first, each into the earliest year with room (ties: input order)."""
    left = room.copy()
    year = np.full(value.shape[0], -1, dtype=np.int64)
    for p in np.argsort(-value[:, 0], kind="stable"):
        for k in range(value.shape[1]):
            if allowed[p, k] and np.all(u[p] <= left[k] + 1e-9):
                year[p] = k
                left[k] -= u[p]
                break
    return year


