"""Merge `akg bench` JSON files of one suite run in parts (e.g. over several GPU calls) into one.

    python bench/merge_results.py OUT.json PART.json [PART.json ...]
"""
import json
import sys
from pathlib import Path

from akg.bench import markdown_table, summarize


def merge(parts: list[dict]) -> dict:
    rows = {r["problem"]: r for part in parts for r in part["problems"]}
    merged = dict(parts[0])
    merged["problems"] = [rows[name] for name in sorted(rows)]
    merged["summary"] = summarize(merged["problems"])
    merged["parts"] = [{"suite": p["suite"], "date": p["date"], "problems": len(p["problems"]),
                        "copy_bandwidth_gbs": p.get("copy_bandwidth_gbs")} for p in parts]
    return merged


def main(argv: list[str]) -> int:
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    merged = merge([json.loads(Path(p).read_text()) for p in argv[2:]])
    Path(argv[1]).write_text(json.dumps(merged, indent=2) + "\n")
    print(markdown_table(merged))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
