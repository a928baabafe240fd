#!/usr/bin/env python3
"""Independent check of kuzet's road graph against the OpenStreetMap extract, read with pyosmium.

    target/tools-venv/bin/python tests/roads/check_graph.py \\
        --kuzet target/debug/kuzet --extract target/osm/Helsinki.osm.pbf [--sample 200] [--seed 7]

`kuzet roads export --extract PBF --out DIR` writes DIR/ways.csv (`way_id,highway,oneway`, oneway
one of forward/backward/both): every way kuzet accepted as drivable, before its strongly
connected component filter. This script applies the drivable rule itself, from the text below,
and runs two checks:

  (a) the set of drivable way ids is the same (the counts and every id; differences are listed);
  (b) for a random sample of the ways both sides accept, the oneway value (and the highway
      value) agree.

Drivable: tag highway in DRIVABLE_HIGHWAYS, not area=yes, access / motor_vehicle / motorcar
not in {no, private}, at least 2 node references. Oneway (the first of oneway:motorcar,
oneway:motor_vehicle, oneway that is set): in {yes, true, 1} -> forward;
-1 or reverse -> backward; no/false/0 -> both; otherwise junction in {roundabout, circular} or
highway in {motorway, motorway_link} -> forward (implied); otherwise both.

Ends with `roads graph: P passed, F failed`; exits 1 on any failure or error. Runs with
target/tools-venv/bin/python (scripts/setup.sh installs osmium and the extract).
"""

import collections
import csv
import os
import random
import re
import sys
import tempfile

import osmium

from roadcheck import EDGES_HEADER, MAX_SHOWN, CheckError, Parser, check_inputs, read_csv, run_kuzet

DRIVABLE_HIGHWAYS = frozenset({
    "motorway", "trunk", "primary", "secondary", "tertiary", "unclassified", "residential",
    "motorway_link", "trunk_link", "primary_link", "secondary_link", "tertiary_link",
    "living_street", "service", "road",
})
# Tag -> values that make a way not drivable.
EXCLUDING_TAGS = (
    ("area", frozenset({"yes"})),
    ("access", frozenset({"no", "private"})),
    ("motor_vehicle", frozenset({"no", "private"})),
    ("motorcar", frozenset({"no", "private"})),
)
ONEWAY_FORWARD = frozenset({"yes", "true", "1"})
ONEWAY_BACKWARD = frozenset({"-1", "reverse"})
ONEWAY_BOTH = frozenset({"no", "false", "0"})
IMPLIED_ONEWAY_JUNCTIONS = frozenset({"roundabout", "circular"})
IMPLIED_ONEWAY_HIGHWAYS = frozenset({"motorway", "motorway_link"})
ONEWAY_VALUES = ("forward", "backward", "both")

WAYS_HEADER = ["way_id", "highway", "oneway"]
INT_RE = re.compile(r"^[0-9]+$")


def oneway_of(tags, highway):
    # A car-specific oneway tag wins over the general one.
    ow = next((tags.get(k) for k in ("oneway:motorcar", "oneway:motor_vehicle", "oneway") if tags.get(k) is not None), None)
    if ow in ONEWAY_FORWARD:
        return "forward"
    if ow in ONEWAY_BACKWARD:
        return "backward"
    if ow in ONEWAY_BOTH:
        return "both"
    if tags.get("junction") in IMPLIED_ONEWAY_JUNCTIONS or highway in IMPLIED_ONEWAY_HIGHWAYS:
        return "forward"
    return "both"


def read_extract(path):
    """({way_id: (highway, oneway)} of the drivable ways, Counter of informative figures)."""
    drivable = {}
    info = collections.Counter()
    unlisted_oneway = collections.Counter()  # oneway values the rule does not name
    # with_locations: node references missing from the extract (clipped at its border) get an
    # invalid location, which is counted below for information only.
    for obj in osmium.FileProcessor(path).with_locations():
        if not obj.is_way():
            continue
        info["ways in extract"] += 1
        tags = obj.tags
        highway = tags.get("highway")
        if highway is None:
            continue
        info["ways with highway"] += 1
        if highway not in DRIVABLE_HIGHWAYS:
            continue
        excluded_by = [k for k, bad in EXCLUDING_TAGS if tags.get(k) in bad]
        if excluded_by:
            info["excluded by " + "+".join(excluded_by)] += 1
            continue
        if len(obj.nodes) < 2:
            info["excluded: fewer than 2 nodes"] += 1
            continue
        ow = tags.get("oneway")
        if ow is not None and ow not in ONEWAY_FORWARD | ONEWAY_BACKWARD | ONEWAY_BOTH:
            unlisted_oneway[ow] += 1
        located = sum(1 for n in obj.nodes if n.location.valid())
        if located < len(obj.nodes):
            info["drivable with node refs missing from the extract"] += 1
        if located < 2:
            info["drivable with fewer than 2 nodes in the extract"] += 1
        drivable[obj.id] = (highway, oneway_of(tags, highway))
    for v, c in unlisted_oneway.most_common():
        info[f"drivable with unlisted oneway={v!r} (taken as both/implied)"] = c
    return drivable, info


def read_kuzet_ways(path):
    """{way_id: (highway, oneway)} from kuzet's ways.csv; each way once, oneway well-formed."""
    ways = {}
    for r in read_csv(path, WAYS_HEADER):
        wid, highway, oneway = (c.strip() for c in r)
        if not INT_RE.match(wid):
            raise CheckError(f"{path}: way_id {wid!r} is not a positive integer")
        if oneway not in ONEWAY_VALUES:
            raise CheckError(f"{path}: way {wid}: oneway {oneway!r}, expected one of "
                             f"{', '.join(ONEWAY_VALUES)}")
        if int(wid) in ways:
            raise CheckError(f"{path}: way {wid} listed twice")
        ways[int(wid)] = (highway, oneway)
    return ways


def edge_way_ids(path):
    """The way ids edges.csv names (for information), or None when there is no edges.csv."""
    if not os.path.isfile(path):
        return None
    ids = set()
    for r in read_csv(path, EDGES_HEADER):
        if not INT_RE.match(r[4].strip()):
            raise CheckError(f"{path}: way_id {r[4]!r} is not a positive integer")
        ids.add(int(r[4]))
    return ids


def show_ids(label, ids):
    ids = sorted(ids)
    print(f"  {label}: {len(ids)}" + (f": {' '.join(map(str, ids[:MAX_SHOWN]))}" if ids else "")
          + (" ..." if len(ids) > MAX_SHOWN else ""))


def check(kuzet, extract, sample, seed, workdir):
    expected, info = read_extract(extract)
    run_kuzet(kuzet, ["roads", "export", "--extract", extract, "--out", workdir])
    got = read_kuzet_ways(os.path.join(workdir, "ways.csv"))

    first = ("ways in extract", "ways with highway")
    for k in [k for k in first if k in info] + sorted(k for k in info if k not in first):
        print(f"extract: {k}: {info[k]}")
    for name, ways in (("expected (pyosmium)", expected), ("kuzet ways.csv", got)):
        by_oneway = collections.Counter(ow for _, ow in ways.values())
        print(f"{name}: {len(ways)} drivable ways ("
              + ", ".join(f"{v} {by_oneway[v]}" for v in ONEWAY_VALUES) + ")")
    in_edges = edge_way_ids(os.path.join(workdir, "edges.csv"))
    if in_edges is not None:
        stray = in_edges - got.keys()
        print(f"edges.csv: edges from {len(in_edges)} ways (after the SCC filter)"
              + (f"; WARNING: {len(stray)} of them not in ways.csv, e.g. "
                 f"{' '.join(map(str, sorted(stray)[:MAX_SHOWN]))}" if stray else ""))

    passed = failed = 0
    # (a) the same drivable ways.
    only_expected = expected.keys() - got.keys()
    only_kuzet = got.keys() - expected.keys()
    if only_expected or only_kuzet:
        failed += 1
        print(f"FAIL (a) drivable ways: pyosmium {len(expected)}, kuzet {len(got)}")
        show_ids("drivable by the rule, missing from kuzet", only_expected)
        show_ids("in kuzet, not drivable by the rule", only_kuzet)
    else:
        passed += 1
        print(f"ok   (a) drivable ways: the same {len(expected)} ways")

    # (b) oneway (and highway) of a sample of the ways both accept.
    common = sorted(expected.keys() & got.keys())
    picked = random.Random(seed).sample(common, min(sample, len(common)))
    bad = [w for w in picked if expected[w] != got[w]]
    if bad or not picked:
        failed += 1
        print(f"FAIL (b) oneway: {len(bad)} of {len(picked)} sampled ways differ"
              + ("" if picked else " (no way in common)"))
        for w in bad[:MAX_SHOWN]:
            (eh, eo), (gh, go) = expected[w], got[w]
            print(f"  way {w}: expected highway={eh} oneway={eo}, kuzet highway={gh} oneway={go}")
        if len(bad) > MAX_SHOWN:
            print(f"  ... and {len(bad) - MAX_SHOWN} more")
    else:
        passed += 1
        print(f"ok   (b) oneway: {len(picked)} sampled ways of {len(common)} agree")

    print(f"roads graph: {passed} passed, {failed} failed")
    return failed == 0


def main():
    ap = Parser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kuzet", required=True, help="path to the kuzet binary")
    ap.add_argument("--extract", required=True, help="OpenStreetMap .osm.pbf extract")
    ap.add_argument("--sample", type=int, default=200, help="ways sampled for check (b) (200)")
    ap.add_argument("--seed", type=int, default=7, help="random seed for the sample (7)")
    a = ap.parse_args()
    try:
        if a.sample < 1:
            raise CheckError("--sample must be at least 1")
        check_inputs(a.kuzet, a.extract)
        with tempfile.TemporaryDirectory(prefix="kuzet-roads-graph-") as tmp:
            ok = check(os.path.abspath(a.kuzet), os.path.abspath(a.extract), a.sample, a.seed, tmp)
    except CheckError as e:
        print(f"check_graph: error: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # pyosmium reports unreadable files this way
        print(f"check_graph: error: reading {a.extract}: {e}", file=sys.stderr)
        return 1
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
