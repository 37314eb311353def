#!/usr/bin/python3
"""Merges the JSON lines of the libdel and PyTorch benchmark programs.

  report.py throughput FILE...   lines with "bench", "threads" and "libdel" or
                                 "reference" (one per run) -> one line per
                                 (bench, threads): medians over runs and
                                 ratio = libdel / reference, or reference / libdel
                                 for rows marked "lower_is_better" (memory), so
                                 > 1 always means libdel is better; fails if the
                                 two sides report different "params"; libdel's
                                 extra libdel_* figures, augmented_share and a
                                 recipe's reference_acc are kept (medians
                                 over runs)
  report.py fmnist1k FILE...     lines with "recipe", "seed" and libdel_* or
                                 reference_* -> one line per recipe (per
                                 (recipe, part) for the lines with a "part",
                                 as R6 and R7 write): means over seeds, and
                                 the per-seed values

Only the standard library is used, so any python3 can run it."""

import json
import statistics
import sys


def read(paths):
    rows = []
    for path in paths:
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    rows.append(json.loads(line))
    return rows


def ordered_keys(rows, key):
    seen = []
    for r in rows:
        if key(r) not in seen:
            seen.append(key(r))
    return seen


def throughput(rows):
    for bench, threads in ordered_keys(rows, lambda r: (r["bench"], r["threads"])):
        group = [r for r in rows if r["bench"] == bench and r["threads"] == threads]
        ours = [r["libdel"] for r in group if "libdel" in r]
        ref = [r["reference"] for r in group if "reference" in r]
        names = [r["reference_name"] for r in group if "reference_name" in r]
        out = {"bench": bench, "threads": threads, "unit": group[0]["unit"],
               "libdel": round(statistics.median(ours), 1) if ours else None,
               "reference": round(statistics.median(ref), 1) if ref else None,
               "reference_name": names[0] if names else None}
        lower = any(r.get("lower_is_better") for r in group)
        if ours and ref:
            num, den = (out["reference"], out["libdel"]) if lower else (out["libdel"], out["reference"])
            out["ratio"] = round(num / den, 2)
        else:
            out["ratio"] = None
        out["runs"] = max(len(ours), len(ref))
        # Extra figures of libdel's lines (e.g. the pre-augmented rate of
        # train_pseudo_label_fmnist_cnn) and the reference's accuracy of a
        # recipe line: medians over runs, as libdel's.
        for key in ordered_keys([{"k": k} for r in group for k in r
                                 if k.startswith("libdel_") or k == "reference_acc"],
                                lambda r: r["k"]):
            values = [r[key] for r in group if isinstance(r.get(key), (int, float))]
            if values:
                out[key] = round(statistics.median(values), 4)
        shares = [r["augmented_share"] for r in group if "augmented_share" in r]
        if shares:
            out["augmented_share"] = round(statistics.median(shares), 3)
        params = sorted({r["params"] for r in group if "params" in r})
        if len(params) > 1:
            raise SystemExit("report.py: %s: the two sides' networks differ: %s parameters"
                             % (bench, " vs ".join(map(str, params))))
        if params:
            out["params"] = params[0]
        print(json.dumps(out))


def mean(values):
    return round(statistics.fmean(values), 4) if values else None


def fmnist1k(rows):
    for recipe, part in ordered_keys(rows, lambda r: (r["recipe"], r.get("part"))):
        group = [r for r in rows if r["recipe"] == recipe and r.get("part") == part]
        seeds = ordered_keys(group, lambda r: r["seed"])
        per_seed = {}
        for side in ("libdel", "reference"):
            by_seed = {r["seed"]: r for r in group if side + "_acc" in r}
            per_seed[side] = [by_seed[s][side + "_acc"] if s in by_seed else None for s in seeds]
            per_seed[side + "_s"] = [by_seed[s][side + "_s"] for s in seeds if s in by_seed]
        names = [r["reference_name"] for r in group if "reference_name" in r]
        out = {"recipe": recipe}
        if part is not None:
            out["part"] = part
        out.update({
            "libdel_acc": mean([a for a in per_seed["libdel"] if a is not None]),
            "reference_acc": mean([a for a in per_seed["reference"] if a is not None]),
            "libdel_s": round(statistics.fmean(per_seed["libdel_s"]), 1) if per_seed["libdel_s"] else None,
            "reference_s": round(statistics.fmean(per_seed["reference_s"]), 1) if per_seed["reference_s"] else None,
            "seeds": seeds,
            "libdel_acc_per_seed": per_seed["libdel"],
            "reference_acc_per_seed": per_seed["reference"],
            "reference_name": names[0] if names else None,
            "steps": group[0].get("steps")})
        print(json.dumps(out))


def main(argv):
    modes = {"throughput": throughput, "fmnist1k": fmnist1k}
    if len(argv) < 2 or argv[1] not in modes:
        print(__doc__, file=sys.stderr)
        return 2
    modes[argv[1]](read(argv[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
