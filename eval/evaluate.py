"""Precision, recall and F1 per entity type for each system, against the labels.

A finding is a true positive when a labelled span of the same type overlaps it;
each label is matched at most once. A further finding of the same type inside an
already matched label (an address found in two pieces, say) counts neither way. Presidio reports dates as DATE_TIME, compared
here with DATE_OF_BIRTH.
"""

import json
import sys
from collections import defaultdict

ALIASES = {"DATE_TIME": "DATE_OF_BIRTH"}


def score(labels, findings):
    by_type = defaultdict(lambda: [0, 0, 0])  # tp, fp, fn
    gold = defaultdict(list)
    for doc in labels:
        for s in doc["spans"]:
            gold[s["type"]].append([s["start"], s["end"], False])
    for t in gold:
        gold[t].sort()
    for f in findings:
        t = ALIASES.get(f["type"], f["type"])
        overlapping = [g for g in gold.get(t, []) if g[0] < f["end"] and f["start"] < g[1]]
        hit = next((g for g in overlapping if not g[2]), None)
        if hit:
            hit[2] = True
            by_type[t][0] += 1
        elif not overlapping:
            by_type[t][1] += 1
    for t, spans in gold.items():
        by_type[t][2] += sum(1 for g in spans if not g[2])
    return by_type


def prf(tp, fp, fn):
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def main(labels_path, charter_path, presidio_path):
    labels = [json.loads(l) for l in open(labels_path)]
    charter = []
    for line in open(charter_path):
        charter.extend(json.loads(line)["findings"])
    presidio = json.load(open(presidio_path))["findings"]
    systems = {"charter": score(labels, charter), "Presidio": score(labels, presidio)}
    types = sorted({t for s in systems.values() for t in s} | {s["type"] for d in labels for s in d["spans"]})
    print("| Type | charter P | charter R | charter F1 | Presidio P | Presidio R | Presidio F1 |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    totals = {k: [0, 0, 0] for k in systems}
    for t in types:
        row = [t]
        for name, s in systems.items():
            tp, fp, fn = s.get(t, [0, 0, 0])
            totals[name][0] += tp
            totals[name][1] += fp
            totals[name][2] += fn
            row += [f"{v:.3f}" for v in prf(tp, fp, fn)]
        print("| " + " | ".join(row) + " |")
    row = ["**overall**"]
    for name in systems:
        row += [f"**{v:.3f}**" for v in prf(*totals[name])]
    print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(*sys.argv[1:4])
