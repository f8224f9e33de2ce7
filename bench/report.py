"""Run every benchmark and print one table: our figures, the peers' from the same run, the ratios.

Usage::

    python bench/report.py            # run bench/ and write the report
    python bench/report.py --no-run   # rebuild the report from the last run's JSON files

It runs ``pytest bench --benchmark-only`` with pytest-benchmark's JSON output, then gathers

- every benchmark, by group, with its median and the ratio to the fastest member of its group;
- every ``ratios`` entry that a benchmark module wrote into ``bench/results/<area>.json``
  (``label``, ``ours``, ``peer``, ``ratio``, optional ``target``/``min_ratio`` and ``met``): the
  targets of the issues, measured as ratios against a peer or a baseline in the same run.

Writes ``bench/results/report.json`` and ``bench/results/report.md``, and replaces the block
between ``<!-- bench-report:start -->`` and ``<!-- bench-report:end -->`` in docs/benchmarks.md,
so the documentation's table is regenerated, never hand-edited.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
RAW = RESULTS / "benchmarks.json"
START, END = "<!-- bench-report:start -->", "<!-- bench-report:end -->"
DOCS_PAGE = ROOT / "docs" / "benchmarks.md"  # the page whose generated table this script rewrites


def run_benchmarks(extra: list[str]) -> int:
    RESULTS.mkdir(exist_ok=True)
    command = [
        sys.executable, "-m", "pytest", str(HERE), "-q", "--benchmark-only",
        f"--benchmark-json={RAW}", "-p", "no:randomly", *extra,
    ]
    print("$", " ".join(command), flush=True)
    return subprocess.call(command, cwd=ROOT)


def _fmt_seconds(seconds: float) -> str:
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _fmt_ratio(ratio: Any) -> str:
    # A bench that could not form its ratio (e.g. no load step within its latency limit) says so.
    if not isinstance(ratio, int | float):
        return "n/a"
    return f"{ratio:.3f}×" if abs(ratio) < 0.1 else f"{ratio:.2f}×"


def benchmark_groups(raw: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in raw.get("benchmarks", []):
        group = bench.get("group") or Path(bench["fullname"].split("::")[0]).stem
        groups[group].append(
            {
                "name": bench["name"],
                "median_s": bench["stats"]["median"],
                "ops": bench["stats"].get("ops"),
                "rounds": bench["stats"].get("rounds"),
                "extra": bench.get("extra_info") or {},
            }
        )
    for rows in groups.values():
        rows.sort(key=lambda r: r["median_s"])
        fastest = rows[0]["median_s"] or 1e-12
        for row in rows:
            row["vs_fastest"] = row["median_s"] / fastest
    return dict(sorted(groups.items()))


def target_ratios() -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for path in sorted(RESULTS.glob("*.json")):
        if path.name in ("benchmarks.json", "report.json"):
            continue
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        for entry in data.get("ratios", []) if isinstance(data, dict) else []:
            if isinstance(entry, dict) and "ratio" in entry:
                found.append({"area": path.stem, **entry})
    return found


def markdown(groups: dict[str, list[dict[str, Any]]], ratios: list[dict[str, Any]], meta: dict[str, str]) -> str:
    lines = [
        f"Measured {meta['when']} on {meta['machine']}, Python {meta['python']}; "
        "regenerate with `python bench/report.py`.",
        "",
    ]
    if ratios:
        lines += ["| area | comparison | ours | peer | ratio | target | met |", "|---|---|---|---|---|---|---|"]
        for r in ratios:
            target = r.get("target") or (f"≥ {r['min_ratio']}×" if r.get("min_ratio") else "")
            met = {True: "yes", False: "no", None: "—"}.get(r.get("met"), str(r.get("met")))
            lines.append(
                f"| {r['area']} | {r.get('label', '')} | {r.get('ours', '')} | {r.get('peer', '')} "
                f"| {_fmt_ratio(r['ratio'])} | {target} | {met} |"
            )
        lines.append("")
    lines += ["| group | benchmark | median | ops/s | × fastest in group |", "|---|---|---|---|---|"]
    for group, rows in groups.items():
        for row in rows:
            ops = f"{row['ops']:,.0f}" if row["ops"] else ""
            lines.append(f"| {group} | {row['name']} | {_fmt_seconds(row['median_s'])} | {ops} | {row['vs_fastest']:.2f} |")
    return "\n".join(lines) + "\n"


def update_docs(table: str, page: Path = DOCS_PAGE) -> bool:
    """Replace the generated block of ``page``; False (nothing written) when it has no markers."""
    text = page.read_text()
    if START not in text or END not in text:
        return False
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    page.write_text(f"{head}{START}\n{table}{END}{tail}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-run", action="store_true", help="only rebuild the report from the last run")
    parser.add_argument("--no-docs", "--no-readme", dest="no_docs", action="store_true",
                        help="do not rewrite the table in docs/benchmarks.md")
    parser.add_argument("pytest_args", nargs="*", help="extra pytest arguments (e.g. -k breaker)")
    args = parser.parse_args(argv)
    if not args.no_run:
        code = run_benchmarks(args.pytest_args)
        if code not in (0, 5):
            print(f"benchmarks failed (pytest exit {code}); report not written", file=sys.stderr)
            return code
    if not RAW.exists():
        print(f"no benchmark results at {RAW}: run without --no-run first", file=sys.stderr)
        return 2
    raw = json.loads(RAW.read_text())
    meta = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()} ({raw.get('machine_info', {}).get('cpu', {}).get('count', '?')} cores)",
        "python": platform.python_version(),
    }
    groups = benchmark_groups(raw)
    ratios = target_ratios()
    table = markdown(groups, ratios, meta)
    (RESULTS / "report.json").write_text(json.dumps({"meta": meta, "ratios": ratios, "groups": groups}, indent=2) + "\n")
    (RESULTS / "report.md").write_text(table)
    print(table)
    if not args.no_docs and update_docs(table):
        print(f"{DOCS_PAGE.relative_to(ROOT)} benchmark table updated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
