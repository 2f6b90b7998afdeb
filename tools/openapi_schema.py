"""Write .cog/openapi_schema.json for running predict.py under coglet without `cog build`.

`cog build` generates this file inside the image; coglet reads it from the working directory and
uses it to validate inputs (choices, bounds, required fields -> HTTP 422) and to serve
/openapi.json. `make serve` runs this first so the local server behaves like the image.
The input and output types come from Cog's own inspector, so the file cannot drift from predict.py.
Cog's Python inspector passes TypedDicts in outputs through as plain objects; `cog build`'s schema
generator describes their fields, and `describe()` here does the same, so /openapi.json tells a
reader or a client generator the shape of each segment, word and speaker in both.

Optional inputs accept an explicit null (`"target_lang": null`), written as JSON Schema type lists
(hence OpenAPI 3.1). Unknown input names cannot be refused here: coglet 0.23.1 strips them, with a
log line, before it validates (an `additionalProperties: false` is never seen).

    python tools/openapi_schema.py [predict.py:Runner] [--out .cog/openapi_schema.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import types
import typing
from pathlib import Path

_PRIMITIVES = {str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
               bool: {"type": "boolean"}}


def describe(tpe) -> dict:
    """JSON schema of a type annotation: primitives, list[X], Optional[X], TypedDicts (their
    required keys, NotRequired ones optional), anything else an opaque object."""
    origin, args = typing.get_origin(tpe), typing.get_args(tpe)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        inner = [a for a in args if a is not type(None)]
        return {**describe(inner[0]), "nullable": True} if len(inner) == 1 else {"type": "object", "nullable": True}
    if origin in (typing.NotRequired, typing.Required):
        return describe(args[0])
    if origin is list:
        return {"type": "array", "items": describe(args[0]) if args else {"type": "object"}}
    if typing.is_typeddict(tpe):
        hints = typing.get_type_hints(tpe, include_extras=True)  # keeps NotRequired[...] visible
        props = {name: {**describe(t), "title": name.replace("_", " ").title()} for name, t in hints.items()}
        # __required_keys__ misses NotRequired when annotations are strings (from __future__ import annotations)
        required = [name for name, t in hints.items() if typing.get_origin(t) is not typing.NotRequired
                    and (name in tpe.__required_keys__ or typing.get_origin(t) is typing.Required)]
        return {"type": "object", "properties": props, **({"required": required} if required else {})}
    return dict(_PRIMITIVES.get(tpe, {"type": "object"}))


def output_schema(info, output_cls) -> dict:
    """Cog's Output schema, with what Cog leaves as a bare object described: a TypedDict output
    as a whole, or the TypedDict fields of a BaseModel output."""
    schema = info.output.json_type()
    if output_cls is not None and typing.is_typeddict(output_cls):
        return {"title": "Output", **describe(output_cls)}
    hints = typing.get_type_hints(output_cls) if output_cls is not None else {}
    for name, prop in schema.get("properties", {}).items():
        if name in hints:
            prop.update({k: v for k, v in describe(hints[name]).items() if k != "nullable"})
    return schema


def build_schema(ref: str) -> dict:
    from cog import _inspector

    module, cls = ref.split(":")
    info = _inspector.create_predictor(module.removesuffix(".py"), cls)
    properties, required = {}, []
    for name, field in info.inputs.items():
        prop = dict(field.type.json_type())
        prop["title"] = name.replace("_", " ").title()
        prop["x-order"] = field.order
        for key, value in (("description", field.description), ("default", field.default),
                           ("minimum", field.ge), ("maximum", field.le), ("minLength", field.min_length),
                           ("maxLength", field.max_length), ("pattern", field.regex), ("enum", field.choices)):
            if value is not None:
                prop[key] = value
        if field.default is None and field.type.repetition.name in ("REQUIRED", "REPEATED"):
            required.append(name)
        if field.type.repetition.name == "OPTIONAL":
            # `Optional[T]`: an explicit null means "not given". coglet validates with a JSON Schema
            # validator that ignores OpenAPI 3.0's `nullable`, so null must be in the type itself.
            prop["type"] = [prop["type"], "null"]
            if "enum" in prop:
                prop["enum"] = [*prop["enum"], None]
        properties[name] = prop
    inputs = {"type": "object", "title": "Input", "properties": properties}
    if required:
        inputs["required"] = required
    return {
        "openapi": "3.1.0",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {"schemas": {"Input": inputs, "Output": output_schema(info, _output_class(module, cls))}},
    }


def _output_class(module: str, cls: str):
    import importlib

    run = getattr(getattr(importlib.import_module(module.removesuffix(".py")), cls), "run")
    return typing.get_type_hints(run).get("return")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ref", nargs="?", default="predict.py:Runner")
    ap.add_argument("--out", default=".cog/openapi_schema.json")
    args = ap.parse_args()
    sys.path.insert(0, str(Path.cwd()))
    schema = build_schema(args.ref)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(schema, indent=2) + "\n")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
