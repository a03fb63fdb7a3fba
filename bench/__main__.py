"""`make bench` runs every benchmark; `make bench BENCH=ingest` runs one.

Each benchmark is a module in this package with `run(args) -> bool` (targets met) and is listed
in BENCHMARKS. They need the local PostgreSQL (BENCH_DATABASE_URL, default kota_bench, which is
dropped and recreated; `ingest` uses the same name + "_ingest").

`usage` and `entitlement` share one seeded database of 10 M events; `--reuse` (or BENCH_REUSE=1)
keeps it when it was seeded with the same sizes, so running both seeds once. Sizes and knobs come
from BENCH_* environment variables (see each module's docstring); `--quick` is a smoke run.
"""

import argparse
import importlib
import importlib.util
import sys

BENCHMARKS = [
    name
    for name in ("ingest", "usage", "entitlement", "rollover", "alert_latency")
    if importlib.util.find_spec(f"bench.{name}") is not None
]


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {BENCHMARKS})"
    )
    parser.add_argument("--quick", action="store_true", help="smaller data, for a smoke run")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep an already-seeded bench database of the same sizes (usage, entitlement)",
    )
    args = parser.parse_args()
    unknown = set(args.names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    results = {}
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        results[name] = module.run(args)
    print("\n== summary")
    for name, met in results.items():
        print(f"  {name:14} {'all targets met' if met else 'target(s) missed'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
