"""Shared by the road checks: running kuzet and reading its CSV files strictly."""

import argparse
import csv
import os
import subprocess
import sys

EDGES_HEADER = ["from", "to", "time_ms", "length_m", "way_id"]
MAX_SHOWN = 10
KUZET_TIMEOUT_S = 900


class CheckError(Exception):
    """A problem that stops the check (missing file, bad CSV, kuzet failing)."""


class Parser(argparse.ArgumentParser):
    """Exits 1 (not argparse's 2) on bad arguments: any error fails the check."""

    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        sys.exit(1)


def run_kuzet(kuzet, args, stdout_path=None):
    cmd = [kuzet, *args]
    try:
        if stdout_path is None:
            proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, timeout=KUZET_TIMEOUT_S)
        else:
            with open(stdout_path, "w") as out:
                proc = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE,
                                      text=True, timeout=KUZET_TIMEOUT_S)
    except OSError as e:
        raise CheckError(f"cannot run {kuzet}: {e}") from e
    except subprocess.TimeoutExpired as e:
        raise CheckError(f"{' '.join(cmd)} took more than {KUZET_TIMEOUT_S} s") from e
    if proc.returncode != 0:
        err = proc.stderr.strip()
        raise CheckError(f"{' '.join(cmd)} exited with {proc.returncode}"
                         + (f":\n{err}" if err else ""))


def read_csv(path, header):
    """Rows (lists of strings) of a CSV file whose first row must be exactly `header`."""
    if not os.path.isfile(path):
        raise CheckError(f"{path} missing")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise CheckError(f"{path} is empty (expected header {','.join(header)})")
    if [c.strip() for c in rows[0]] != header:
        raise CheckError(f"{path}: header {','.join(rows[0])!r}, expected {','.join(header)!r}")
    body = [r for r in rows[1:] if r]  # a trailing blank line is harmless
    for i, r in enumerate(body, start=2):
        if len(r) != len(header):
            raise CheckError(f"{path}:{i}: {len(r)} fields, expected {len(header)}")
    return body


def check_inputs(kuzet, extract):
    """The extract and the kuzet binary both exist, or a CheckError says which does not."""
    if not os.path.isfile(extract):
        raise CheckError(f"extract {extract} missing (scripts/setup.sh fetches it)")
    if not (os.path.isfile(kuzet) and os.access(kuzet, os.X_OK)):
        raise CheckError(f"kuzet binary {kuzet} missing or not executable")
