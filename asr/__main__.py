"""Command line: `python -m asr segment|transcribe|tiny-model ...` (see README)."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import ASRError


def _segment(args: argparse.Namespace) -> int:
    from .frontend import FrontEnd

    plan = FrontEnd().plan(args.audio)
    json.dump(plan.to_dict(), sys.stdout, indent=None if args.compact else 2)
    sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asr", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="print the chunk plan as JSON (no model is loaded)")
    seg.add_argument("audio", help="path to an audio or video file")
    seg.add_argument("--compact", action="store_true", help="one-line JSON")
    seg.set_defaults(func=_segment)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except ASRError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
