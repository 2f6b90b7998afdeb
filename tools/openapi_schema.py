"""Write .cog/openapi_schema.json for running predict.py under coglet without `cog build`.

`cog build` generates this file inside the image; coglet reads it from the working directory and
uses it to validate inputs (choices, bounds, required fields -> HTTP 422) and to serve
/openapi.json. `make serve` runs this first so the local server behaves like the image.
The input and output types come from Cog's own inspector, so the file cannot drift from predict.py.

Optional inputs accept an explicit null (`"target_lang": null`), written as JSON Schema type lists
(hence OpenAPI 3.1). Unknown input names cannot be refused here: coglet 0.23.1 strips them, with a
log line, before it validates (an `additionalProperties: false` is never seen).

    python tools/openapi_schema.py [predict.py:Runner] [--out .cog/openapi_schema.json]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


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
        "components": {"schemas": {"Input": inputs, "Output": info.output.json_type()}},
    }


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
