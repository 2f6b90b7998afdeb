"""The prediction inputs as command-line flags: one definition (predict.py's `Runner.run`) for
the HTTP API, `transcribe` and `client`.

Cog's own inspector (the one that writes the OpenAPI schema) reads the inputs, so names,
defaults, choices and bounds cannot drift between the CLI and the server, and an input added to
`run()` appears as a flag without touching the CLI. Each input `some_name` becomes
`--some-name` (and `--some_name`, its HTTP spelling); booleans get `--x/--no-x`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from .errors import ASRError

ROOT = Path(__file__).resolve().parents[1]
RUNNER = "predict.py:Runner"
EXPLICIT = "explicit_inputs"
"""Namespace attribute: the set of input names given on the command line (not defaulted)."""


@dataclass(frozen=True)
class InputSpec:
    """One prediction input as Cog sees it."""

    name: str
    kind: str
    """"str", "int", "float", "bool" or "path" (a file: local path or URL); any other type (a
    union, Any) is taken as text and left to the server to check."""
    default: object
    required: bool
    nullable: bool
    description: str
    choices: tuple | None = None
    minimum: float | None = None
    maximum: float | None = None
    repeated: bool = False
    """A list input: the flag takes one or more values."""

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


_KINDS = {"BOOL": "bool", "FLOAT": "float", "INTEGER": "int", "STRING": "str", "PATH": "path", "FILE": "path"}


def prediction_inputs(ref: str = RUNNER) -> tuple[InputSpec, ...]:
    """The inputs of `ref` ("file.py:Class", relative to the project root), in `run()`'s order."""
    try:
        from cog import _inspector
    except ImportError as e:
        raise ASRError("the Cog SDK is not installed (it defines the prediction inputs): run `make venv`") from e
    module, cls = ref.split(":")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    info = _inspector.create_predictor(module.removesuffix(".py"), cls)
    specs = []
    for name, field in sorted(info.inputs.items(), key=lambda item: item[1].order):
        kind = _KINDS.get(field.type.primitive.name, "str")
        repetition = field.type.repetition.name
        specs.append(InputSpec(
            name=name, kind=kind, default=field.default, required=repetition == "REQUIRED" and field.default is None,
            nullable=repetition == "OPTIONAL",
            description=field.description or "", choices=tuple(field.choices) if field.choices else None,
            minimum=field.ge, maximum=field.le, repeated=repetition in ("REPEATED", "OPTIONAL_REPEATED"),
        ))
    return tuple(specs)


def _bounded(kind: type, spec: InputSpec):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"{text!r} is not a{'n integer' if kind is int else ' number'}") from e
        if (spec.minimum is not None and value < spec.minimum) or (spec.maximum is not None and value > spec.maximum):
            raise argparse.ArgumentTypeError(f"{text} is outside {spec.minimum:g} to {spec.maximum:g}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _tracking(base: type[argparse.Action]) -> type[argparse.Action]:
    """An action that also records that its input was given explicitly."""

    class Tracked(base):  # type: ignore[misc, valid-type]
        def __call__(self, parser, namespace, values, option_string=None):
            super().__call__(parser, namespace, values, option_string)
            seen = set(getattr(namespace, EXPLICIT, None) or ())
            seen.add(self.dest)
            setattr(namespace, EXPLICIT, seen)

    return Tracked


_STORE = _tracking(argparse._StoreAction)
_BOOL = _tracking(argparse.BooleanOptionalAction)


def add_input_flags(parser: argparse.ArgumentParser, specs: tuple[InputSpec, ...],
                    positional: str = "audio") -> tuple[InputSpec, ...]:
    """Add a flag for every input except `positional` and any whose name the parser already
    uses (a command-only flag such as `transcribe --model PATH` wins). Returns those added."""
    group = parser.add_argument_group("prediction inputs (the same names, defaults and bounds as the HTTP API)")
    added = []
    for spec in specs:
        if spec.name == positional:
            continue
        names = [spec.flag] + ([f"--{spec.name}"] if "_" in spec.name else [])
        help_text = spec.description.replace("%", "%%")
        kwargs: dict = {"dest": spec.name, "default": spec.default, "help": help_text}
        if spec.kind == "bool":
            kwargs.update(action=_BOOL, help=help_text + " (default: %(default)s)")
        else:
            kwargs.update(action=_STORE, metavar=spec.name.upper())
            if spec.choices:
                short = len(spec.choices) <= 6  # long lists (languages) are in the description
                kwargs.update(choices=spec.choices,
                              metavar="{" + ",".join(map(str, spec.choices)) + "}" if short else spec.name.upper())
            if spec.kind in ("int", "float"):
                kwargs["type"] = _bounded(int if spec.kind == "int" else float, spec)
                if spec.minimum is not None and spec.maximum is not None:
                    kwargs["help"] += f" {spec.minimum:g} to {spec.maximum:g}"
            if spec.repeated:
                kwargs["nargs"] = "+"
            if spec.required:
                kwargs["required"] = True
            elif spec.default is not None:
                kwargs["help"] += " (default: %(default)s)"
        try:
            group.add_argument(*names, **kwargs)
        except argparse.ArgumentError:
            continue  # the command defines this flag itself
        added.append(spec)
    return tuple(added)


def explicit(args: argparse.Namespace) -> set[str]:
    """Names of the inputs given on the command line."""
    return set(getattr(args, EXPLICIT, None) or ())


def input_values(args: argparse.Namespace, specs: tuple[InputSpec, ...], only_explicit: bool = False) -> dict:
    """{input name: value} for `specs` (all of them, or only those given on the command line)."""
    given = explicit(args)
    return {s.name: getattr(args, s.name) for s in specs if not only_explicit or s.name in given}
