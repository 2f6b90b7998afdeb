"""The CLI and the HTTP API agree: every input in the published schema is a flag of `transcribe`
and `client`, with the same default, choices and bounds; and /openapi.json describes the output."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from asr.__main__ import build_parser
from tests.service import ROOT
from tools.openapi_schema import build_schema

INPUTS = build_schema("predict.py:Runner")["components"]["schemas"]["Input"]["properties"]
FLAGGED = {name: prop for name, prop in INPUTS.items() if name != "audio"}


def _subparser(command: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]


def _parse(command: str, *flags: str) -> argparse.Namespace:
    return build_parser().parse_args([command, "x.wav", *flags])


@pytest.mark.parametrize("command", ["transcribe", "client"])
def test_every_input_is_a_flag_with_the_servers_default(command):
    defaults = _parse(command)
    for name, prop in FLAGGED.items():
        assert hasattr(defaults, name), f"{command} has no flag for input {name}"
        assert getattr(defaults, name) == prop.get("default"), name
    assert defaults.timestamps is True, "timestamps default to on, as over HTTP"


@pytest.mark.parametrize("command", ["transcribe", "client"])
def test_flags_keep_the_servers_bounds_and_choices(command, capsys):
    actions = {a.dest: a for a in _subparser(command)._actions}
    for name, prop in FLAGGED.items():
        if "enum" in prop:
            assert list(actions[name].choices) == [v for v in prop["enum"] if v is not None], name  # null: omitted
        if "minimum" in prop:
            flag = "--" + name.replace("_", "-")
            lo, hi = prop["minimum"], prop["maximum"]
            text = (lambda v: str(int(v))) if prop["type"] == "integer" else str
            assert getattr(_parse(command, flag, text(lo)), name) == lo
            assert getattr(_parse(command, f"--{name}", text(hi)), name) == hi  # the HTTP spelling too
            for bad in (lo - 1, hi + 1):
                with pytest.raises(SystemExit):
                    _parse(command, flag, text(bad))
                assert "is outside" in capsys.readouterr().err


def test_help_lists_every_input():
    out = subprocess.run([sys.executable, "-m", "asr", "transcribe", "--help"], cwd=ROOT, capture_output=True,
                         text=True, timeout=60).stdout
    for name, prop in FLAGGED.items():
        assert "--" + name.replace("_", "-") in out, name
        if prop["type"] == "boolean":
            assert "--no-" + name.replace("_", "-") in out, name


def test_published_schema_describes_the_output(server):
    status, schema = server.request("GET", "/openapi.json")
    assert status == 200
    out = schema["components"]["schemas"]["Output"]
    props = out["properties"]
    segment = props["segments"]["items"]
    assert set(segment["required"]) >= {"start", "end", "text", "words"}
    assert segment["properties"]["start"]["type"] == "number"
    word = segment["properties"]["words"]["items"]
    assert word["required"] == ["start", "end", "word"] and "speaker" in word["properties"]
    assert word["properties"]["confidence"]["type"] == "number"
    assert segment["properties"]["confidence"]["type"] == "number"
    assert "speakers" not in out["required"], "absent without diarize"
    assert props["speakers"]["items"]["properties"]["speech_s"]["type"] == "number"
    for name in ("detected_language", "language_probability", "warnings", "srt", "vtt"):
        assert name in props, name
    assert props["srt"].get("nullable") is True
