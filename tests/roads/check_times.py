#!/usr/bin/env python3
"""Independent check of kuzet's travel times against scipy's Dijkstra.

    target/tools-venv/bin/python tests/roads/check_times.py \\
        --kuzet target/debug/kuzet --extract target/osm/Helsinki.osm.pbf [--pairs 500] [--seed 7]

1. `kuzet roads export --extract PBF --out DIR` writes DIR/nodes.csv (`node,lat,lon`, node =
   0..N-1) and DIR/edges.csv (`from,to,time_ms,length_m,way_id`, the directed edges of the car
   graph's largest strongly connected component; parallel edges may exist, the shortest counts).
2. This script builds a sparse matrix from the edges (the minimum time_ms of each (from, to):
   scipy would SUM duplicates, so they are removed first), picks distinct random (from, to)
   pairs with a fixed seed and writes them to a pairs file (`from,to`).
3. `kuzet roads times --extract PBF --pairs FILE` prints `from,to,time_ms` (empty time_ms when
   unreachable, which must not happen within one strongly connected component).
4. Every kuzet time must equal scipy.sparse.csgraph.dijkstra's exactly (integers; |diff| <= 1e-6).

Ends with `roads times: P passed, F failed`; exits 1 on any failure or error (missing or
malformed files, kuzet failing, ...). Runs with target/tools-venv/bin/python (scripts/setup.sh
installs numpy, scipy and the extract).
"""

import csv
import os
import re
import sys
import tempfile

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, dijkstra

from roadcheck import EDGES_HEADER, MAX_SHOWN, CheckError, Parser, check_inputs, read_csv, run_kuzet

NODES_HEADER = ["node", "lat", "lon"]
TIMES_HEADER = ["from", "to", "time_ms"]
TOLERANCE = 1e-6
INT_RE = re.compile(r"^[0-9]+$")


def parse_int(path, what, s):
    s = s.strip()
    if not INT_RE.match(s):
        raise CheckError(f"{path}: {what} {s!r} is not a non-negative integer")
    return int(s)


def read_nodes(path):
    """Number of nodes; checks the ids are exactly 0..N-1 and coordinates parse."""
    rows = read_csv(path, NODES_HEADER)
    ids = [parse_int(path, "node", r[0]) for r in rows]
    if sorted(ids) != list(range(len(ids))):
        raise CheckError(f"{path}: node ids are not exactly 0..{len(ids) - 1}")
    for r in rows:
        try:
            lat, lon = float(r[1]), float(r[2])
        except ValueError as e:
            raise CheckError(f"{path}: node {r[0]}: bad coordinate: {e}") from e
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            raise CheckError(f"{path}: node {r[0]}: coordinate out of range: {lat},{lon}")
    if not ids:
        raise CheckError(f"{path}: no nodes")
    return len(ids)


def read_edges(path, n):
    """(from, to, time_ms) int64 arrays, as listed (duplicates included)."""
    rows = read_csv(path, EDGES_HEADER)
    if not rows:
        raise CheckError(f"{path}: no edges")
    frm = np.empty(len(rows), dtype=np.int64)
    to = np.empty(len(rows), dtype=np.int64)
    t = np.empty(len(rows), dtype=np.int64)
    for i, r in enumerate(rows):
        frm[i] = parse_int(path, "from", r[0])
        to[i] = parse_int(path, "to", r[1])
        t[i] = parse_int(path, "time_ms", r[2])
        try:
            float(r[3])
        except ValueError as e:
            raise CheckError(f"{path}: edge {r[0]}->{r[1]}: bad length_m {r[3]!r}") from e
        parse_int(path, "way_id", r[4])
    bad = (frm >= n) | (to >= n)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise CheckError(f"{path}: edge {frm[i]}->{to[i]} names a node >= {n} (nodes.csv)")
    return frm, to, t


def dedup_min(frm, to, t):
    """Keeps, for each (from, to), the smallest time; drops self-loops (they never shorten a path).

    Needed because csr_matrix((data, (row, col))) SUMS duplicate entries."""
    keep = frm != to
    frm, to, t = frm[keep], to[keep], t[keep]
    order = np.lexsort((t, to, frm))  # by from, then to, then time: the first of a group is the min
    frm, to, t = frm[order], to[order], t[order]
    first = np.ones(len(frm), dtype=bool)
    first[1:] = (frm[1:] != frm[:-1]) | (to[1:] != to[:-1])
    return frm[first], to[first], t[first]


def build_graph(frm, to, t, n):
    """CSR matrix of the deduplicated edges. Zero times stay as explicit entries: csgraph treats
    an explicit zero of a sparse matrix as an edge of weight 0 (an absent entry is no edge)."""
    frm, to, t = dedup_min(frm, to, t)
    g = csr_matrix((t.astype(np.float64), (frm, to)), shape=(n, n))
    if g.nnz != len(frm):  # only if the dedup above were wrong
        raise CheckError(f"internal: {len(frm)} distinct edges but {g.nnz} matrix entries")
    return g


def pick_pairs(n, count, seed):
    """`count` distinct (from, to) pairs with from != to, in a reproducible order."""
    possible = n * (n - 1)
    if possible == 0:
        raise CheckError("graph has a single node: no pairs to check")
    count = min(count, possible)
    rng = np.random.default_rng(seed)
    seen, pairs = set(), []
    while len(pairs) < count:
        a, b = (int(x) for x in rng.integers(0, n, size=2))
        if a != b and (a, b) not in seen:
            seen.add((a, b))
            pairs.append((a, b))
    return pairs


def read_times(path, pairs):
    """{(from, to): time_ms or None}; each requested pair exactly once, nothing else."""
    rows = read_csv(path, TIMES_HEADER)
    wanted = set(pairs)
    got = {}
    for r in rows:
        key = (parse_int(path, "from", r[0]), parse_int(path, "to", r[1]))
        if key not in wanted:
            raise CheckError(f"kuzet roads times: pair {key[0]},{key[1]} was not asked for")
        if key in got:
            raise CheckError(f"kuzet roads times: pair {key[0]},{key[1]} listed twice")
        s = r[2].strip()
        got[key] = None if s == "" else parse_int(path, "time_ms", s)
    return got


def check(kuzet, extract, n_pairs, seed, workdir):
    outdir = os.path.join(workdir, "export")
    os.mkdir(outdir)
    run_kuzet(kuzet, ["roads", "export", "--extract", extract, "--out", outdir])
    n = read_nodes(os.path.join(outdir, "nodes.csv"))
    frm, to, t = read_edges(os.path.join(outdir, "edges.csv"), n)
    g = build_graph(frm, to, t, n)
    n_scc, _ = connected_components(g, directed=True, connection="strong")
    print(f"graph: {n} nodes, {len(frm)} edges ({g.nnz} after keeping the shortest of parallel "
          f"edges and dropping self-loops), {n_scc} strongly connected component(s)")
    problems = []
    if n_scc != 1:
        problems.append(f"FAIL: export has {n_scc} strongly connected components, expected 1")

    pairs = pick_pairs(n, n_pairs, seed)
    pairs_path = os.path.join(workdir, "pairs.csv")
    with open(pairs_path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["from", "to"])
        w.writerows(pairs)
    times_path = os.path.join(workdir, "times.csv")
    run_kuzet(kuzet, ["roads", "times", "--extract", extract, "--pairs", pairs_path], times_path)
    got = read_times(times_path, pairs)

    sources = np.unique(np.array([a for a, _ in pairs], dtype=np.int64))
    dist = dijkstra(g, directed=True, indices=sources)
    row_of = {int(s): i for i, s in enumerate(sources)}

    passed = failed = 0
    for a, b in pairs:
        want = dist[row_of[a], b]
        have = got.get((a, b), "missing")
        if have == "missing":
            ok, shown = False, "no row"
        elif have is None:
            ok, shown = bool(np.isinf(want)), "unreachable"
        else:
            ok, shown = bool(np.isfinite(want) and abs(have - want) <= TOLERANCE), f"{have} ms"
        if ok:
            passed += 1
        else:
            failed += 1
            if failed <= MAX_SHOWN:
                want_s = "unreachable" if np.isinf(want) else f"{want:.0f} ms"
                print(f"mismatch {a} -> {b}: kuzet {shown}, scipy {want_s}")
    if failed > MAX_SHOWN:
        print(f"... and {failed - MAX_SHOWN} more mismatches")
    for p in problems:
        print(p)
    print(f"roads times: {passed} passed, {failed} failed")
    return failed == 0 and not problems


def main():
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kuzet", required=True, help="path to the kuzet binary")
    ap.add_argument("--extract", required=True, help="OpenStreetMap .osm.pbf extract")
    ap.add_argument("--pairs", type=int, default=500, help="number of (from, to) pairs (500)")
    ap.add_argument("--seed", type=int, default=7, help="random seed for the pairs (7)")
    a = ap.parse_args()
    try:
        if a.pairs < 1:
            raise CheckError("--pairs must be at least 1")
        check_inputs(a.kuzet, a.extract)
        with tempfile.TemporaryDirectory(prefix="kuzet-roads-times-") as tmp:
            ok = check(os.path.abspath(a.kuzet), os.path.abspath(a.extract), a.pairs, a.seed, tmp)
    except CheckError as e:
        print(f"check_times: error: {e}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
