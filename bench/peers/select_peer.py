#!/usr/bin/env python3
"""The peer for the select benchmark: a series selector of the MONAI Deploy kind.

It applies Clara / MONAI Deploy selection rules the way MONAI Deploy's DICOMSeriesSelectorOperator
documents them (v3.5.0), to the series of a parser's dicom-metadata.json:

- a string condition holds when it equals the value ignoring case, or when re.search(condition,
  value, re.IGNORECASE) finds it; against a number, re.fullmatch(condition, str(value));
- on a multi-valued attribute, every term of a list condition must be a substring of the lowercase
  str() of the value list, and a "!term" must not be (a plain string is one such term);
- a number attribute takes equality, an inclusive [min, max] or [value, op];
- ImageOrientationPatient takes Axial/Coronal/Sagittal: the axis of the largest |row x column|;
- a missing or falsy value never matches, a falsy condition is skipped, the first failed condition
  ends the test of a series;
- per study and selection the first matching series is kept unless all_matched, looking at series
  with more instances first when sort_by_sop_instance_count.

Standard library only. Keywords are resolved with the PS3.6 dictionary the bench passes in (what
pydicom's datadict does for MONAI).

usage: select_peer.py <rules-file> <parser-dir> <out-file> <dictionary.json> [--repeat N]

Writes {selection name: [SeriesInstanceUID, ...]} to <out-file> and prints one JSON line of
timings in ms: e2eMs (load + select + write), loadMs, evalFirstMs, and evalWarmMs (median of the
last half of N further evaluations) when --repeat is given.
"""
import base64
import json
import os
import re
import statistics
import sys
import time

PLANES = ("sagittal", "coronal", "axial")


def attribute_value(attributes, key):
    """The value as pydicom would give it: a scalar for one value, a list for several."""
    attribute = attributes.get(key)
    if not attribute or attribute.get("vr") == "SQ":
        return None
    values = attribute.get("Value")
    if not values:
        return None
    values = [v.get("Alphabetic", "") if isinstance(v, dict) else v for v in values]
    return values[0] if len(values) == 1 else values


def plane_of(orientation):
    row, col = orientation[:3], orientation[3:6]
    normal = (
        abs(row[1] * col[2] - row[2] * col[1]),
        abs(row[2] * col[0] - row[0] * col[2]),
        abs(row[0] * col[1] - row[1] * col[0]),
    )
    return PLANES[normal.index(max(normal))]


def numeric_holds(condition, value):
    if isinstance(condition, list) and len(condition) == 2:
        first, second = condition
        if isinstance(second, str):
            if second == ">":
                return value > first
            if second == ">=":
                return value >= first
            if second == "<":
                return value < first
            if second == "<=":
                return value <= first
            if second == "!=":
                return value != first
            raise ValueError(f"unknown operator {second!r}")
        return first <= value <= second
    if isinstance(condition, str):
        return re.fullmatch(condition, str(value)) is not None
    return value == condition


def condition_holds(keyword, condition, value):
    if not value:
        return False
    if keyword == "ImageOrientationPatient":
        return plane_of(value) == str(condition).strip().casefold()
    if isinstance(value, (int, float)):
        return numeric_holds(condition, value)
    if isinstance(value, list):
        printed = str(value).lower()
        for term in condition if isinstance(condition, list) else [condition]:
            term = str(term).lower()
            if term.startswith("!"):
                if term[1:] in printed:
                    return False
            elif term not in printed:
                return False
        return True
    text = str(value)
    condition = str(condition)
    return condition.casefold() == text.casefold() or re.search(condition, text, re.IGNORECASE) is not None


def json_key(keyword, dictionary):
    m = re.fullmatch(r"\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)", keyword)
    if m:
        return (m.group(1) + m.group(2)).upper()
    entry = dictionary.get(keyword)
    return entry[0] if entry else None


def select(metadata, rules, dictionary):
    selections = rules.get("selections")
    if selections is None:
        raise ValueError("the rules have no 'selections'")
    chosen = {}
    for study in metadata["studies"]:
        series_list = study["series"]
        for selection in selections:
            conditions = selection.get("conditions")
            if not conditions:
                continue
            name = selection.get("name", "")
            tests = [(k, json_key(k, dictionary), c) for k, c in conditions.items() if c]
            order = series_list
            if selection.get("sort_by_sop_instance_count", False):
                order = sorted(series_list, key=lambda s: s["instanceCount"], reverse=True)
            found = chosen.setdefault(name, [])
            for series in order:
                attributes = series["attributes"]
                if all(key is not None and condition_holds(k, c, attribute_value(attributes, key)) for k, key, c in tests):
                    found.append(series["SeriesInstanceUID"])
                    if not selection.get("all_matched", False):
                        break
    return chosen


def main(argv):
    started = time.perf_counter()
    rules_file, parser_dir, out_file, dictionary_file = argv[1:5]
    repeat = int(argv[argv.index("--repeat") + 1]) if "--repeat" in argv else 0
    with open(dictionary_file, encoding="utf-8") as f:
        dictionary = json.load(f)
    with open(rules_file, encoding="utf-8") as f:
        text = f.read().strip()
    # NVIDIA_CLARA_SELECTION_RULES_BASE64 holds Base64; a rules file holds JSON.
    rules = json.loads(text if text.startswith("{") else base64.b64decode(text).decode("utf-8"))
    with open(os.path.join(parser_dir, "dicom-metadata.json"), encoding="utf-8") as f:
        metadata = json.load(f)
    loaded = time.perf_counter()
    chosen = select(metadata, rules, dictionary)
    evaluated = time.perf_counter()
    with open(out_file, "w", encoding="utf-8") as f:
        json.dump(chosen, f, indent=2)
    finished = time.perf_counter()
    result = {
        "e2eMs": (finished - started) * 1000,
        "loadMs": (loaded - started) * 1000,
        "evalFirstMs": (evaluated - loaded) * 1000,
    }
    if repeat:
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            select(metadata, rules, dictionary)
            times.append((time.perf_counter() - t) * 1000)
        # The same steady-state window as the Node probe: the second half of the calls.
        result["evalWarmMs"] = statistics.median(times[len(times) // 2:])
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
