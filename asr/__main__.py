"""Command line: `python -m asr segment|transcribe|client|tiny-model ...` (see README).

`transcribe` and `client` take every prediction input of the HTTP API as a flag with the same
name, default and bounds (read from predict.py by Cog's inspector: asr/inputs.py)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .errors import ASRError, InputError


def _segment(args: argparse.Namespace) -> int:
    from .frontend import FrontEnd

    plan = FrontEnd().plan(args.audio, keep_samples=False)
    json.dump(plan.to_dict(), sys.stdout, indent=None if args.compact else 2)
    sys.stdout.write("\n")
    return 0


def _timestamps(args: argparse.Namespace) -> bool:
    """Timestamps default to on, as over HTTP; plain text shows none, so `--format text` skips
    the alignment work unless --timestamps is given. Subtitles need them."""
    from .inputs import explicit

    if args.format in ("srt", "vtt"):
        if not args.timestamps:
            raise ASRError(f"--format {args.format} needs timestamps; drop --no-timestamps")
        return True
    if args.format == "text" and "timestamps" not in explicit(args):
        return False
    return args.timestamps


def _transcribe(args: argparse.Namespace) -> int:
    import dataclasses

    from . import formats
    from .inputs import input_values
    from .languages import ALL_CODES, normalise_code
    from .pipeline import Transcriber
    from .progress import ProgressDisplay
    from .settings import OFF
    from .types import AUTO, SubtitleOptions, TranscribeOptions

    values = input_values(args, args.input_specs)
    values["timestamps"] = _timestamps(args)
    # an unknown code fails before a model loads; what each model accepts is checked after
    for key in ("source_lang", "target_lang"):
        if values.get(key) not in (None, "", "auto"):
            normalise_code(values[key], key, ALL_CODES)
    sub_fields = {f.name for f in dataclasses.fields(SubtitleOptions)}
    subtitles = SubtitleOptions(**{k: values.pop(k) for k in list(values) if k in sub_fields})
    opt_fields = {f.name for f in dataclasses.fields(TranscribeOptions)}
    unmapped = sorted(set(values) - opt_fields)
    if unmapped:
        logging.getLogger(__name__).warning("inputs not used by transcribe: %s", ", ".join(unmapped))
    options = TranscribeOptions(**{k: v for k, v in values.items() if k in opt_fields}, subtitles=subtitles)
    if not (os.path.isfile(args.audio) and os.access(args.audio, os.R_OK)):  # before seconds of model loading
        raise InputError(f"'{args.audio}' is not a readable file")
    if not args.verbose:
        quiet_third_party()
    # Only what this request needs: one ASR model, the identifier only for source_lang auto, the
    # diarizer only with --diarize (a server loads everything once; a command pays per run).
    auto = (options.source_lang or AUTO).strip().lower() == AUTO
    transcriber = Transcriber.load(model_to_load(args.model), device=args.device, batch_size=args.batch_size,
                                   lid_model=args.lid_model if auto else OFF,
                                   diar_model=args.diar_model if options.diarize else OFF)
    with ProgressDisplay(os.path.basename(args.audio)) as progress:
        transcript = transcriber.transcribe(args.audio, options, progress=progress)
    for warning in transcript.warnings:  # stdout stays the transcript alone, ready to redirect
        print(f"warning: {warning}", file=sys.stderr)
    if args.format == "text":
        sys.stdout.write(formats.to_text(transcript))
    elif args.format == "json":
        sys.stdout.write(formats.to_json(transcript, subtitles))
    else:
        formats.WRITERS[args.format]().write(transcript, sys.stdout, subtitles)
    return 0


def model_to_load(given: str | None) -> str:
    """The one model `transcribe` loads. `--model` names it as the server's `model` input does
    (an $ASR_MODEL entry's short name: `parakeet-tdt-0.6b-v3`, a .nemo file's name without
    `.nemo`), or gives a .nemo path or Hugging Face name outright; without it, $ASR_MODEL's first."""
    from pathlib import Path

    from . import settings
    from .models.loading import parse_spec

    entries = parse_spec(settings.model_spec() or settings.DEFAULT_MODEL)
    chosen = entries[0] if not given else None
    for entry in entries if given else ():
        p = Path(entry.name)
        if given in (entry.name, p.name) or (p.suffix == ".nemo" and given == p.stem):
            chosen = entry
    if chosen is None:
        return given
    return chosen.name + (f"[{' '.join(sorted(chosen.languages))}]" if chosen.languages else "")


def quiet_third_party() -> None:
    """No NeMo config dumps or notices on stderr: only our warnings, errors and progress
    (`-v` shows everything)."""
    try:
        from nemo.utils import logging as nemo_logging
    except ImportError:
        return
    nemo_logging.setLevel(logging.ERROR)


def _client(args: argparse.Namespace) -> int:
    from . import client
    from .inputs import input_values
    from .progress import Waiting

    inputs = input_values(args, args.input_specs, only_explicit=True)  # the server's defaults are the same
    if str(inputs.get("model") or "").endswith(".nemo"):  # a path: the server knows it by its file name
        inputs["model"] = os.path.basename(inputs["model"])
    timestamps = _timestamps(args)
    if timestamps != args.timestamps or "timestamps" in inputs:
        inputs["timestamps"] = timestamps
    options = client.ClientOptions(url=args.url, max_body_bytes=args.max_body_bytes, retry_s=args.retry_s,
                                   timeout_s=args.timeout_s or None)
    with Waiting(f"{os.path.basename(args.file)}: waiting for {args.url}"):
        try:
            output = client.predict(args.file, inputs, options)
        except client.PredictionFailed as e:
            print(f"error: the prediction failed: {e}", file=sys.stderr)
            return 1
    for warning in output.get("warnings") or ():  # as `transcribe` does: stdout stays the result
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(client.render(output, args.format))
    return 0


def _tiny_model(args: argparse.Namespace) -> int:
    from .testing import build

    if not args.verbose:
        quiet_third_party()
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

    from .client import COG_BODY_LIMIT_BYTES, ClientOptions
    from .inputs import add_input_flags, prediction_inputs

    specs = prediction_inputs()
    formats = ["text", "json", "srt", "vtt"]

    tr = sub.add_parser("transcribe", help="transcribe or translate an audio or video file (no server)")
    tr.add_argument("audio", help="path to an audio or video file")
    tr.add_argument("--format", choices=formats, default="text",
                    help="what to print (default: text; text alone skips timestamps unless --timestamps)")
    tr.add_argument("--model", default=None,
                    help="the model to use (only it is loaded): a name from $ASR_MODEL as the server's model "
                    "input takes it, a .nemo path, or a Hugging Face name (default: the first of $ASR_MODEL, "
                    "else nvidia/canary-1b-v2)")
    tr.add_argument("--lid-model", default=None,
                    help="language identifier: .nemo path or pretrained name (default: $ASR_LID_MODEL, "
                    "else langid_ambernet); none turns detection off")
    tr.add_argument("--diar-model", default=None,
                    help="diarizer: .nemo path or pretrained name (default: $ASR_DIAR_MODEL, else "
                    "nvidia/diar_streaming_sortformer_4spk-v2); none turns it off")
    tr.add_argument("--device", default=None, help="auto (default), cpu or cuda[:N]")
    tr.add_argument("--batch-size", type=int, default=None, help="chunks per model call")
    tr.set_defaults(func=_transcribe, input_specs=add_input_flags(tr, specs))

    cl = sub.add_parser("client", help="send a file to a running server (make serve, a container) and print the result")
    cl.add_argument("file", help="a local audio or video file (sent inline) or an http(s) URL the server downloads")
    cl.add_argument("--url", default=ClientOptions.url, help="the server (default: %(default)s)")
    cl.add_argument("--format", choices=formats, default="text",
                    help="what to print (default: text; text alone skips timestamps unless --timestamps)")
    cl.add_argument("--retry-s", type=float, default=ClientOptions.retry_s,
                    help="keep retrying '409 At capacity' this long (default: %(default)s)")
    cl.add_argument("--timeout-s", type=float, default=0,
                    help="give up waiting for the answer after this long (default: never)")
    cl.add_argument("--max-body-bytes", type=int, default=COG_BODY_LIMIT_BYTES,
                    help="the server's request size limit (Cog: %(default)s); larger files need a URL")
    cl.set_defaults(func=_client, input_specs=add_input_flags(cl, specs))

    from .testing import KINDS  # names only: the builders import NeMo when run

    tiny = sub.add_parser("tiny-model", help="write a small random-weight model with a real checkpoint's structure")
    tiny.add_argument("out", help="output .nemo path")
    tiny.add_argument("--kind", choices=list(KINDS), default="canary",
                      help="model family: canary (EncDecMultiTaskModel, the default), parakeet-tdt, ctc, langid (AmberNet), sortformer (diarizer)")
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
    logging.getLogger("asr.progress").setLevel(logging.INFO)  # progress lines when stderr is not a terminal
    try:
        return args.func(args)
    except ASRError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
