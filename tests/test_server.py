"""The real Cog HTTP server (make serve, coglet) with the tiny model, over real HTTP."""

from __future__ import annotations

import base64
import functools
import http.server
import threading

import pytest

from asr.testing.canary import TINY_PHRASE
from tests.media import RECIPES, write_media

CONTRACT = {"text", "segments", "source_lang", "target_lang", "task", "duration_s", "speech_s", "model",
            "detected_language", "language_probability", "warnings", "srt", "vtt"}  # no speakers without diarize


def data_uri(path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()


@pytest.fixture(scope="module")
def file_server(tmp_path_factory):
    """A plain local HTTP server for URL inputs."""
    root = tmp_path_factory.mktemp("www")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_transcribe_data_uri(server, shared_audio):
    status, body = server.predict(audio=data_uri(shared_audio / "jfk.flac", "audio/flac"), source_lang="en")
    assert status == 200 and body["status"] == "succeeded", body
    out = body["output"]
    assert set(out) == CONTRACT
    assert out["text"] == TINY_PHRASE
    assert (out["task"], out["source_lang"], out["target_lang"]) == ("transcribe", "en", "en")
    assert out["duration_s"] == pytest.approx(11.0, abs=0.01)
    starts = [s["start"] for s in out["segments"]]
    assert starts == sorted(starts)
    for s in out["segments"]:
        assert 0 <= s["start"] <= s["end"] <= out["duration_s"]
        assert set(s) == {"start", "end", "text", "words", "language", "confidence"} and s["language"] == "en"
        assert 0.0 <= s["confidence"] <= 1.0
        for w in s["words"]:
            assert set(w) == {"start", "end", "word", "confidence"} and 0.0 <= w["confidence"] <= 1.0
            assert s["start"] <= w["start"] <= w["end"] <= s["end"]
    assert out["srt"].startswith("1\n00:00:0") and out["vtt"].startswith("WEBVTT\n\n")
    assert out["warnings"] == []  # a clean recording: nothing was done to it worth saying
    metrics = body["metrics"]
    assert metrics["audio_s"] == pytest.approx(11.0, abs=0.01)
    assert 0 < metrics["speech_s"] <= metrics["audio_s"]
    assert {"total_s", "frontend_s", "model_s", "batches"} <= set(metrics["timings"])


def test_translate_from_an_http_url(server, file_server, speech60):
    root, base = file_server
    x, rate = speech60
    write_media(root / "clip.mp3", x[:, : rate * 25], rate, RECIPES["mp3"])
    status, body = server.predict(audio=f"{base}/clip.mp3", source_lang="de", target_lang="en")
    assert status == 200 and body["status"] == "succeeded", body
    out = body["output"]
    assert (out["task"], out["source_lang"], out["target_lang"]) == ("translate", "de", "en")
    assert out["text"].startswith(TINY_PHRASE)
    assert out["segments"] and all(s["words"] == [] for s in out["segments"])  # segment times only


def test_omitted_target_means_same_language(server, shared_audio):
    status, body = server.predict(audio=data_uri(shared_audio / "jfk.flac", "audio/flac"), source_lang="pl",
                                  timestamps=False)
    assert body["status"] == "succeeded", body
    out = body["output"]
    assert (out["task"], out["target_lang"]) == ("transcribe", "pl")
    assert out["srt"] is None and out["vtt"] is None
    assert [s["words"] for s in out["segments"]] == [[]]


def test_unknown_language_is_rejected_with_its_value(server, shared_audio):
    status, body = server.predict(audio=data_uri(shared_audio / "jfk.flac", "audio/flac"), source_lang="xx")
    assert status == 422
    assert '"xx"' in str(body) and "source_lang" in str(body)
    assert server.ready()


def test_unsupported_pair_fails_with_a_clear_message(server, shared_audio):
    status, body = server.predict(audio=data_uri(shared_audio / "jfk.flac", "audio/flac"),
                                  source_lang="de", target_lang="fr")
    assert status == 200 and body["status"] == "failed"
    assert "German (de)" in body["error"] and "French (fr)" in body["error"]
    assert "Traceback" not in body["error"]
    assert server.ready()
    status, body = server.predict(audio=data_uri(shared_audio / "jfk.flac", "audio/flac"), source_lang="de")
    assert body["status"] == "succeeded"  # and the next prediction works


def test_undecodable_upload_fails_and_the_server_keeps_serving(server, shared_audio):
    junk = "data:audio/mpeg;base64," + base64.b64encode(b"definitely not an mp3 " * 100).decode()
    status, body = server.predict(audio=junk, source_lang="en")
    assert body["status"] == "failed"
    assert "is a text file, not audio" in body["error"] and "accepted:" in body["error"]
    assert "Traceback" not in body["error"]
    assert server.ready()


def test_missing_audio_is_a_validation_error(server):
    status, body = server.request("POST", "/predictions", {"input": {"source_lang": "en"}})
    assert status == 422 and "audio" in str(body)
    assert server.ready()


def test_openapi_schema_lists_the_inputs(server):
    status, schema = server.request("GET", "/openapi.json")
    assert status == 200
    props = schema["components"]["schemas"]["Input"]["properties"]
    assert {"audio", "source_lang", "target_lang", "pnc", "timestamps", "model"} <= set(props)
    assert all(p.get("description") for p in props.values())
    from asr.languages import ALL_CODES, CODES

    # the union of what any model may accept; each model is checked at run time
    assert set(CODES) < set(props["source_lang"]["enum"]) == {"auto", *ALL_CODES}
    assert props["source_lang"]["default"] == "auto"
