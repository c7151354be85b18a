"""Update units, steps 4–6: faces into blocks, oversize blocks split, small and thin blocks merged.

Connected components over the shared-edge table give barrier-bounded blocks; a greedy
region-merging loop joins deficient blocks into neighbours; oversize blocks are cut along
minor roads one class at a time.
"""

from __future__ import annotations

import heapq
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from urbanunits.crs import require_projected
from urbanunits.unit_faces import face_adjacency
from urbanunits.unit_lines import _OPEN

__all__ = [
    "label_blocks",
    "merge_small",
    "split_large",
]

logger = logging.getLogger(__name__)

def _canonical(labels: NDArray[np.intp]) -> NDArray[np.intp]:
    """Renumber labels 0..m-1 in order of first appearance."""
    _, first, inv = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(len(first), dtype=np.intp)
    rank[np.argsort(first, kind="stable")] = np.arange(len(first))
    return rank[inv.ravel()]


def label_blocks(n: int, adjacency: pd.DataFrame, *, level: int = 0,
                 groups: NDArray[Any] | None = None) -> NDArray[np.intp]:
    """Connected components of faces joined across edges that are not cuts at ``level``.

    Parameters
    ----------
    n
        Number of faces.
    adjacency
        :func:`face_adjacency` table (positions ``i``, ``j``; ``max_cut``).
    level
        0 gives barrier-bounded blocks; k also cuts along split roads of levels 1..k.
    groups
        Optional group codes per face (sub-district): faces in different groups never join.

    Returns
    -------
    numpy.ndarray
        Block label per face, numbered 0.. in order of each block's first face.
    """
    i = adjacency["i"].to_numpy(dtype=np.intp)
    j = adjacency["j"].to_numpy(dtype=np.intp)
    join = adjacency["max_cut"].to_numpy() > level
    if groups is not None:
        g = np.asarray(groups)
        join &= g[i] == g[j]
    m = coo_matrix((np.ones(int(join.sum())), (i[join], j[join])), shape=(n, n))
    _, lab = connected_components(m, directed=False)
    return _canonical(lab.astype(np.intp))


def _aggregate(labels: NDArray[np.intp], area: NDArray[np.float64],
               perim: NDArray[np.float64], adjacency: pd.DataFrame
               ) -> tuple[NDArray[np.float64], NDArray[np.float64], pd.DataFrame]:
    """Areas, perimeters and adjacency of groups of faces (exact, from shared lengths)."""
    m = int(labels.max()) + 1 if len(labels) else 0
    a = np.bincount(labels, area, minlength=m).astype(float)
    li = labels[adjacency["i"].to_numpy(dtype=np.intp)]
    lj = labels[adjacency["j"].to_numpy(dtype=np.intp)]
    length = adjacency["length_m"].to_numpy()
    internal = li == lj
    p = (np.bincount(labels, perim, minlength=m)
         - 2 * np.bincount(li[internal], length[internal], minlength=m)).astype(float)
    ext = adjacency[~internal].assign(i=np.minimum(li, lj)[~internal],
                                      j=np.maximum(li, lj)[~internal])
    adj = ext.groupby(["i", "j"], sort=True).agg(length_m=("length_m", "sum"),
                                                 hard_m=("hard_m", "sum"),
                                                 max_cut=("max_cut", "max")).reset_index()
    return a, p, adj


def _thin(area: float, perim: float, sliver_width_m: float) -> bool:
    return sliver_width_m > 0 and perim > 0 and 2.0 * area / perim < sliver_width_m


def _merge(area: NDArray[np.float64], perim: NDArray[np.float64], groups: NDArray[Any],
           adjacency: pd.DataFrame, *, min_area_m2: float, max_area_m2: float,
           sliver_width_m: float) -> NDArray[np.intp]:
    """Greedy merge of deficient blocks; returns the root block of each block.

    A priority queue holds blocks that are too small or too thin, smallest first. Each is merged
    into one neighbour of its group; adjacency is kept as a dict per block and summed on merge,
    so each merge costs O(degree). This is the textbook region-merging loop; no library offers it
    over a shared-edge table with these preferences.
    """
    n = len(area)
    area = area.astype(float).copy()
    perim = perim.astype(float).copy()
    adj: list[dict[int, list[float]]] = [{} for _ in range(n)]
    ai = adjacency["i"].to_numpy(dtype=np.intp)
    aj = adjacency["j"].to_numpy(dtype=np.intp)
    same = np.asarray(groups)[ai] == np.asarray(groups)[aj]
    # Python scalars from tolist(): the loop below runs once per edge
    for i, j, ln, hd in zip(ai[same].tolist(), aj[same].tolist(),
                            adjacency["length_m"].to_numpy()[same].tolist(),
                            adjacency["hard_m"].to_numpy()[same].tolist(), strict=True):
        adj[i][j] = [ln, hd]
        adj[j][i] = [ln, hd]
    parent = np.arange(n)
    # Thinness is a property of the original faces: a block that absorbs a sliver may get a
    # "tail" that lowers its 2·area/perimeter, and must not start a cascade of merges.
    with np.errstate(divide="ignore", invalid="ignore"):
        sliver = (sliver_width_m > 0) & (perim > 0) & (2.0 * area / perim < sliver_width_m)

    def deficient(k: int) -> bool:
        return bool(area[k] < min_area_m2 or sliver[k])

    start = np.flatnonzero((area < min_area_m2) | sliver)
    heap = list(zip(area[start].tolist(), start.tolist(), strict=True))
    heapq.heapify(heap)
    while heap:
        a_k, k = heapq.heappop(heap)
        if parent[k] != k or a_k != area[k] or not deficient(k):
            continue
        # Candidate key: tier, longest shared edge, then the smaller neighbour (balanced
        # units), then the lower index (determinism). A sliver joins the block it runs along
        # (longest edge) whatever the resulting size; a small block only joins where the
        # result stays within max_area_m2. Rail and water are crossed only by slivers.
        best: tuple[int, float, float, int] | None = None
        for nb, (ln, hd) in adj[k].items():
            soft = ln - hd
            if sliver[k]:
                cand = (0, -soft, area[nb], nb) if soft > 0 else (1, -ln, area[nb], nb)
            elif soft > 0 and area[k] + area[nb] <= max_area_m2:
                cand = (0, -soft, area[nb], nb)
            else:
                continue
            if best is None or cand < best:
                best = cand
        if best is None:
            continue
        nb = best[3]
        ln_k = adj[k][nb][0]
        parent[k] = nb
        area[nb] += area[k]
        perim[nb] = perim[nb] + perim[k] - 2.0 * ln_k
        sliver[nb] = sliver[nb] and _thin(area[nb], perim[nb], sliver_width_m)
        for c, (ln, hd) in adj[k].items():
            if c == nb:
                continue
            e = adj[nb].setdefault(c, [0.0, 0.0])
            e[0] += ln
            e[1] += hd
            adj[c][nb] = e
            del adj[c][k]
        del adj[nb][k]
        adj[k] = {}
        if deficient(nb):
            heapq.heappush(heap, (area[nb], nb))
    # Path compression: follow parents to the surviving root.
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    return root


def merge_small(blocks: gpd.GeoDataFrame | pd.DataFrame, adjacency: pd.DataFrame | None = None,
                *, min_area_m2: float, max_area_m2: float = math.inf,
                sliver_width_m: float = 0.0, group_col: str | None = None) -> pd.Series:
    """Merge blocks that are too small or too thin into neighbours.

    Smallest first, each block below ``min_area_m2`` or thinner than ``sliver_width_m``
    (2·area/perimeter) joins the neighbour in the same group with the longest shared edge. A
    small block only joins across a road (not rail or water) and only where the merged area
    stays ≤ ``max_area_m2``. A sliver joins the block it runs along whatever the resulting size,
    across rail or water only when it has no road edge. Thinness is judged on the blocks as
    given, so a block that absorbed a sliver is not treated as one. Blocks left without a
    candidate stay as they are.

    Parameters
    ----------
    blocks
        Blocks in positional order, with ``area_m2`` and ``perimeter_m`` columns or polygon
        geometry in a metric CRS.
    adjacency
        :func:`face_adjacency`-style table on positions; computed from the geometry when
        ``None`` (then the blocks must share vertices along common edges).
    min_area_m2
        Smallest acceptable area (m²).
    max_area_m2
        A merge may not make a block larger than this (m²), except to absorb a sliver.
    sliver_width_m
        Blocks thinner than this (m) are merged whatever their area; 0 disables.
    group_col
        Column whose values must match for two blocks to merge (e.g. ``subdistrict``).

    Returns
    -------
    pandas.Series
        Integer merge label per block (0.., in order of first block), indexed like ``blocks``.
    """
    if isinstance(blocks, gpd.GeoDataFrame):
        require_projected(blocks, "merge_small")
    area = (blocks["area_m2"].to_numpy(dtype=float) if "area_m2" in blocks.columns
            else np.asarray(blocks.geometry.area, dtype=float))
    perim = (blocks["perimeter_m"].to_numpy(dtype=float) if "perimeter_m" in blocks.columns
             else np.asarray(blocks.geometry.length, dtype=float))
    if adjacency is None:
        assert isinstance(blocks, gpd.GeoDataFrame)
        adjacency = face_adjacency(blocks.reset_index(drop=True))
    groups = (pd.factorize(blocks[group_col].astype("object").fillna("\0none"))[0]
              if group_col else np.zeros(len(blocks), dtype=np.intp))
    root = _merge(area, perim, groups, adjacency, min_area_m2=min_area_m2,
                  max_area_m2=max_area_m2, sliver_width_m=sliver_width_m)
    return pd.Series(_canonical(root), index=blocks.index, name="merge_label")


@dataclass
class _SplitInfo:
    level: int = 0
    reason: str = ""


def split_large(faces: gpd.GeoDataFrame | pd.DataFrame, adjacency: pd.DataFrame,
                block_labels: NDArray[np.intp], *, min_area_m2: float, max_area_m2: float,
                sliver_width_m: float = 0.0, level_names: Sequence[str] = ("tertiary",
                                                                          "residential"),
                groups: NDArray[Any] | None = None) -> tuple[NDArray[np.intp], pd.DataFrame]:
    """Split blocks above ``max_area_m2`` along split roads, one road class at a time.

    For an oversize block, level k cuts it along split roads of levels 1..k (see
    :func:`face_adjacency`); pieces too small or thin are merged back within the block
    (:func:`merge_small` rules). The first level whose parts all lie within
    [``min_area_m2``, ``max_area_m2``] is used; otherwise the level with the most area within
    bounds (lowest level on ties); otherwise the block is left whole.

    Parameters
    ----------
    faces
        Atoms in positional order with ``area_m2`` and ``perimeter_m``.
    adjacency
        :func:`face_adjacency` of the atoms (with ``max_cut``).
    block_labels
        Barrier-bounded block of each atom (:func:`label_blocks` at level 0).
    min_area_m2, max_area_m2
        Size bounds (m²).
    sliver_width_m
        Parts thinner than this (m) are merged back.
    level_names
        Name of each split level (the ``split_highways`` classes), for messages.
    groups
        Group code per atom (sub-district); parts never join across groups.

    Returns
    -------
    labels : numpy.ndarray
        New block label per atom (0.., in order of first atom).
    info : pandas.DataFrame
        Per new block: ``origin`` (``"barriers"`` or ``"split: tertiary, ..."``) and
        ``split_note`` (why an oversize block could not be brought within bounds, else "").
    """
    area = faces["area_m2"].to_numpy(dtype=float)
    perim = faces["perimeter_m"].to_numpy(dtype=float)
    labels = np.asarray(block_labels, dtype=np.intp)
    b_area, _, _ = _aggregate(labels, area, perim, adjacency)
    n_blocks = len(b_area)
    info = [_SplitInfo() for _ in range(n_blocks)]
    over = np.flatnonzero(b_area > max_area_m2)
    final = labels.copy()
    if len(over):
        in_over = np.isin(labels, over)
        i = adjacency["i"].to_numpy(dtype=np.intp)
        j = adjacency["j"].to_numpy(dtype=np.intp)
        cut = adjacency["max_cut"].to_numpy()
        same_block = labels[i] == labels[j]
        has_split = np.zeros(n_blocks, dtype=bool)
        has_split[labels[i][same_block & (cut >= 1) & (cut < _OPEN)]] = True
        g = np.zeros(len(labels), dtype=np.intp) if groups is None else np.asarray(groups)
        best: dict[int, tuple[int, bool, float, NDArray[np.intp]]] = {}
        for level in range(1, len(level_names) + 1):
            sub = label_blocks(len(labels), adjacency, level=level,
                               groups=labels * (int(g.max()) + 1) + g)
            s_area, s_perim, s_adj = _aggregate(sub, area, perim, adjacency)
            parent = np.zeros(len(s_area), dtype=np.intp)
            parent[sub] = labels
            # Merge back only the pieces of oversize blocks (merges never leave a block, so the
            # other blocks' pieces cannot change the result); the rest stay as they are.
            sel = np.zeros(len(s_area), dtype=bool)
            sel[sub[in_over]] = True
            keep = np.flatnonzero(sel)
            pos = np.full(len(s_area), -1, dtype=np.intp)
            pos[keep] = np.arange(len(keep))
            si, sj = s_adj["i"].to_numpy(dtype=np.intp), s_adj["j"].to_numpy(dtype=np.intp)
            both = sel[si] & sel[sj]
            kept_adj = s_adj[both].assign(i=pos[si[both]], j=pos[sj[both]])
            root = np.arange(len(s_area))
            root[keep] = keep[_merge(s_area[keep], s_perim[keep], parent[keep], kept_adj,
                                     min_area_m2=min_area_m2, max_area_m2=max_area_m2,
                                     sliver_width_m=sliver_width_m)]
            part = _canonical(root[sub])  # part label per atom
            p_area = np.bincount(part, area).astype(float)
            _pick_level(best, over, labels, part, p_area, level, min_area_m2, max_area_m2,
                        in_over)
        offset = n_blocks
        # atoms of each block, in position order (no per-block mask over all atoms)
        by_block = np.argsort(labels, kind="stable")
        starts = np.searchsorted(labels[by_block], np.arange(n_blocks + 1))
        for b in over:
            choice = best.get(int(b))
            names = ", ".join(level_names[: choice[0]]) if choice else ""
            if choice is None or choice[2] <= 0:
                info[b].reason = (f"no {' or '.join(level_names)} road crosses it"
                                  if not has_split[b] else
                                  f"splitting along {', '.join(level_names)} roads gives no "
                                  "part within bounds")
                continue
            level, all_ok, _, part = choice
            atoms = by_block[starts[b]:starts[b + 1]]
            final[atoms] = offset + part[atoms]
            offset += int(part.max()) + 1
            info[b].level = level
            if not all_ok:
                info[b].reason = (f"split along {names} roads; parts above the maximum remain "
                                  "(no further road to split them)")
    new = _canonical(final)
    first_atom = np.unique(new, return_index=True)[1]
    origin_names = ["barriers", *("split: " + ", ".join(level_names[:k])
                               for k in range(1, len(level_names) + 1))]
    block_origin = np.array([origin_names[inf.level] for inf in info], dtype=object)
    block_note = np.array([inf.reason for inf in info], dtype=object)
    src = labels[first_atom]
    return new, pd.DataFrame({"origin": block_origin[src], "split_note": block_note[src]})


def _pick_level(best: dict[int, tuple[int, bool, float, NDArray[np.intp]]],
                over: NDArray[np.intp], labels: NDArray[np.intp], part: NDArray[np.intp],
                p_area: NDArray[np.float64], level: int, min_area_m2: float,
                max_area_m2: float, in_over: NDArray[np.bool_]) -> None:
    """Keep, per oversize block, the best split level so far (see :func:`split_large`)."""
    idx = np.flatnonzero(in_over)
    pairs = pd.DataFrame({"b": labels[idx], "p": part[idx]}).drop_duplicates()
    pa = p_area[pairs["p"].to_numpy()]
    pairs["ok"] = (pa >= min_area_m2) & (pa <= max_area_m2)
    pairs["ok_area"] = np.where(pairs["ok"], pa, 0.0)
    s = pairs.groupby("b").agg(n=("p", "size"), all_ok=("ok", "all"),
                               ok_area=("ok_area", "sum"))
    s = s.reindex(over)
    for b, n, all_ok, ok_area in zip(over, s["n"].to_numpy(), s["all_ok"].to_numpy(),
                                     s["ok_area"].to_numpy(), strict=True):
        cand = (level, bool(all_ok) and int(n) > 1, float(ok_area), part)
        prev = best.get(int(b))
        if prev is None or (not prev[1] and (cand[1] or cand[2] > prev[2])):
            best[int(b)] = cand
