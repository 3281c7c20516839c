"""Generate checkout sessions into a new bench database (the generator itself is runner/quality/generator.py,
shipped in the package because `runner demo` uses it too).

    python bench/generate.py --sessions 1M [--seed 1] [--database-url URL]   # into a new bench database
    from bench.generate import generate; generate(conn, 1_000_000)           # into an applied database
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runner.quality.generator import CHUNK, Generated, generate, parse_size, rounds, user_id_sql

__all__ = ["CHUNK", "Generated", "generate", "main", "parse_size", "rounds", "user_id_sql"]


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import argparse

    from bench import common

    parser = argparse.ArgumentParser(description="Generate checkout sessions into a new bench database.")
    parser.add_argument("--sessions", default="100k", help="how many: 100k, 1M, 10M (default 100k)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--database-url", metavar="URL", help="server (default: the embedded PostgreSQL)")
    parser.add_argument("--keep", action="store_true", help="keep the database and print its URL")
    args = parser.parse_args(argv)
    admin = common.server_url(args.database_url)
    name, url = common.create_database(admin, prefix="bench_gen")
    try:
        common.apply_project(url)
        with common.connect(url) as conn:
            g = generate(conn, parse_size(args.sessions), seed=args.seed, progress=common.log)
        print(f"{g.sessions:,} sessions, {g.users:,} users in {g.seconds:.1f}s {g.phases} {g.by_status}")
        if args.keep:
            print(url)
    finally:
        if not args.keep:
            common.drop_database(admin, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
