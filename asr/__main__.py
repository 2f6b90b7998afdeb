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


def _transcribe(args: argparse.Namespace) -> int:
    from . import formats
    from .languages import ALL_CODES, normalise_code
    from .pipeline import Transcriber
    from .types import SubtitleOptions, TranscribeOptions

    # an unknown code fails before a model loads; what each model accepts is checked after
    normalise_code(args.source_lang, "source_lang", ALL_CODES)
    if args.target_lang:
        normalise_code(args.target_lang, "target_lang", ALL_CODES)

    timestamps = args.timestamps or args.format in ("srt", "vtt")
    subtitles = SubtitleOptions(max_segment_s=args.max_segment_s, max_line_chars=args.max_line_chars)
    options = TranscribeOptions(
        source_lang=args.source_lang, target_lang=args.target_lang, pnc=not args.no_pnc,
        timestamps=timestamps, subtitles=subtitles,
    )
    transcriber = Transcriber.load(args.model, device=args.device, batch_size=args.batch_size)
    transcript = transcriber.transcribe(args.audio, options)
    if args.format == "text":
        sys.stdout.write(formats.to_text(transcript))
    elif args.format == "json":
        sys.stdout.write(formats.to_json(transcript, subtitles))
    else:
        formats.WRITERS[args.format]().write(transcript, sys.stdout, subtitles)
    return 0


def _tiny_model(args: argparse.Namespace) -> int:
    from .testing import build

    path = build(args.kind, args.out, seed=args.seed)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m asr", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    seg = sub.add_parser("segment", help="print the chunk plan as JSON (no model is loaded)")
    seg.add_argument("audio", help="path to an audio or video file")
    seg.add_argument("--compact", action="store_true", help="one-line JSON")
    seg.set_defaults(func=_segment)

    tr = sub.add_parser("transcribe", help="transcribe or translate an audio or video file")
    tr.add_argument("audio", help="path to an audio or video file")
    tr.add_argument("--source-lang", default="en", help="language spoken in the audio (default: en)")
    tr.add_argument("--target-lang", default=None,
                    help="language of the output; omit to transcribe, or en<->X to translate")
    tr.add_argument("--no-pnc", action="store_true", help="no punctuation or capitalisation")
    tr.add_argument("--timestamps", action="store_true",
                    help="word and segment timestamps (implied by --format srt|vtt)")
    tr.add_argument("--format", choices=["text", "json", "srt", "vtt"], default="text")
    tr.add_argument("--model", default=None,
                    help="Hugging Face name or .nemo path of the model to load and use "
                    "(default: the first of $ASR_MODEL, else nvidia/canary-1b-v2)")
    tr.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    tr.add_argument("--batch-size", type=int, default=None, help="chunks per model call")
    tr.add_argument("--max-segment-s", type=float, default=7.0, help="longest subtitle cue (seconds)")
    tr.add_argument("--max-line-chars", type=int, default=42, help="longest subtitle line (characters)")
    tr.set_defaults(func=_transcribe)

    from .testing import KINDS  # names only: the builders import NeMo when run

    tiny = sub.add_parser("tiny-model", help="write a small random-weight model with a real checkpoint's structure")
    tiny.add_argument("out", help="output .nemo path")
    tiny.add_argument("--kind", choices=list(KINDS), default="canary",
                      help="model family: canary (EncDecMultiTaskModel, the default), parakeet-tdt, ctc")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(func=_tiny_model)
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
