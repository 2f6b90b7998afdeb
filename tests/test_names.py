"""Public model names and echoed strings: what reaches users never holds a server path, and a
caller's string is repeated at a sane length."""

from __future__ import annotations

import pytest

from asr.names import ECHO_CHARS, clip, public_model_name


def test_hugging_face_names_are_kept():
    assert public_model_name("nvidia/canary-1b-v2") == "nvidia/canary-1b-v2"


def test_a_checkpoint_path_becomes_its_file_name(tmp_path):
    path = tmp_path / "weights" / "canary-1b-v2.nemo"
    path.parent.mkdir()
    path.write_bytes(b"")
    assert public_model_name(str(path)) == "canary-1b-v2"
    assert public_model_name("weights/canary-1b-v2.nemo") == "canary-1b-v2"


def test_the_recorded_hugging_face_name_wins(tmp_path):
    """`make weights` records where a checkpoint came from; the service reports that name."""
    path = tmp_path / "canary-1b-v2.nemo"
    path.write_bytes(b"")
    (tmp_path / "canary-1b-v2.nemo.source").write_text("nvidia/canary-1b-v2\n")
    assert public_model_name(str(path)) == "nvidia/canary-1b-v2"


@pytest.mark.parametrize("recorded", ["/src/weights/x.nemo", "a/b/c", "", "x" * 300 + "/y"])
def test_a_recorded_name_that_is_not_a_hub_name_is_ignored(tmp_path, recorded):
    path = tmp_path / "m.nemo"
    path.write_bytes(b"")
    (tmp_path / "m.nemo.source").write_text(recorded)
    assert public_model_name(str(path)) == "m"


def test_clip():
    assert clip("short") == "short"
    long = "x" * 5000
    assert len(clip(long)) == ECHO_CHARS and clip(long).endswith("…")
