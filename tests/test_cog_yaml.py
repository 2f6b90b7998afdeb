"""cog.yaml is valid against Cog's own config schema for the pinned version, and consistent."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "tests" / "data" / "cog_config_schema_v1.0.json").read_text())


def load() -> dict:
    return yaml.safe_load((ROOT / "cog.yaml").read_text())


def test_cog_yaml_matches_the_schema():
    jsonschema.Draft7Validator(SCHEMA).validate(load())


def test_schema_rejects_what_cog_rejects():
    """The check can fail: unknown keys and both run+predict are refused."""
    validator = jsonschema.Draft7Validator(SCHEMA)
    bad = load()
    bad["build"]["gpus"] = True
    assert not validator.is_valid(bad)
    bad = load()
    bad["predict"] = bad["run"]
    assert not validator.is_valid(bad)


def test_gpu_image_with_pinned_sdk_and_requirements():
    cfg = load()
    build = cfg["build"]
    assert build["gpu"] is True
    assert re.fullmatch(r"3\.\d+", build["python_version"])
    req = ROOT / build["python_requirements"]
    assert req.is_file()
    pins = [line.split("#")[0].strip() for line in req.read_text().splitlines()]
    pins = [p for p in pins if p]
    assert pins and all("==" in p for p in pins), "every runtime requirement is pinned"
    dev = (ROOT / "requirements-dev.txt").read_text()
    assert f"cog=={build['sdk_version']}" in dev, "the image SDK matches the one tests run against"


def test_run_points_at_the_runner():
    module, cls = load()["run"].split(":")
    source = (ROOT / module).read_text()
    assert re.search(rf"^class {cls}\(BaseRunner\):", source, re.M)


def test_weights_path_is_inside_the_image():
    env = dict(item.split("=", 1) for item in load()["environment"])
    assert env["ASR_MODEL"].startswith("/src/weights/")
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert "weights" not in ignored and "weights/" not in ignored
