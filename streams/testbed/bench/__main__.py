"""``python -m streams.testbed.bench``: the same as ``engagement bench``."""

from __future__ import annotations

import argparse
import sys

from streams.testbed.bench.cli import add_bench_parser


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m streams.testbed.bench")
    sub = parser.add_subparsers(dest="command")
    add_bench_parser(sub)
    args = parser.parse_args(["bench", *sys.argv[1:]])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
