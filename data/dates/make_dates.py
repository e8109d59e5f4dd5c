"""Generate the dates example: dates written the ways people write them -> ISO 8601.

    python data/dates/make_dates.py [OUTDIR]     (default: data/dates, beside this script)

writes OUTDIR/train.tsv and OUTDIR/heldout.tsv, one `source TAB target` pair a line, with a
fixed seed, so every run writes the same files. Dates run from 1950-01-01 to 2049-12-31; a
two-digit year yy means 19yy from 50 up, else 20yy. The held-out dates are set aside first:
no held-out date appears in the training set in any form.
"""
from __future__ import annotations

import datetime
import os
import random
import sys

SEED = 2026
N_TRAIN = 40000
N_HELDOUT = 1000
HELDOUT_DATES = 1000

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def ordinal(n: int) -> str:
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def formats(d: datetime.date) -> list:
    """Every way this example writes d (day first where the order is numeric, as in most of the world)."""
    M, m, D, w = MONTHS[d.month - 1], MONTHS[d.month - 1][:3], d.day, DAYS[d.weekday()]
    Y, y = d.year, f"{d.year % 100:02d}"
    return [
        f"{D} {m} {Y}", f"{M} {ordinal(D)}, {Y}", f"{D:02d}/{d.month:02d}/{y}", f"{w}, {D} {M} {Y}",
        f"{D} {M} {Y}", f"{m} {D}, {Y}", f"{D:02d}.{d.month:02d}.{Y}", f"{D}/{d.month}/{Y}",
        f"{w[:3]} {D} {m} {Y}", f"the {ordinal(D)} of {M}, {Y}", f"{D}-{m}-{Y}", f"{M.upper()} {D}, {Y}",
        f"{ordinal(D)} {M} {Y}", f"{w}, {M} {D}, {Y}", f"{Y}/{d.month:02d}/{D:02d}", f"{m}. {D}, '{y}",
        f"{D} {m.lower()} {y}", f"{w.lower()} {D} {M.lower()} {Y}",
    ]


def make(rng: random.Random, dates: list, n: int) -> list:
    out = []
    for _ in range(n):
        d = rng.choice(dates)
        out.append((rng.choice(formats(d)), d.isoformat()))
    return out


def main(outdir: str) -> None:
    rng = random.Random(SEED)
    first, last = datetime.date(1950, 1, 1), datetime.date(2049, 12, 31)
    dates = [first + datetime.timedelta(days=i) for i in range((last - first).days + 1)]
    rng.shuffle(dates)
    heldout_dates, train_dates = dates[:HELDOUT_DATES], dates[HELDOUT_DATES:]
    os.makedirs(outdir, exist_ok=True)
    for name, pool, n in (("train.tsv", train_dates, N_TRAIN), ("heldout.tsv", heldout_dates, N_HELDOUT)):
        with open(os.path.join(outdir, name), "w", encoding="utf-8") as fh:
            for source, target in make(rng, pool, n):
                fh.write(f"{source}\t{target}\n")
    print(f"wrote {N_TRAIN} training and {N_HELDOUT} held-out pairs to {outdir}/", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__)))
