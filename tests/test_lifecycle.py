"""Cancellation, a second simultaneous request, and no state carried between predictions."""

from __future__ import annotations

import base64
import json
import os
import threading
import time

import pytest

from tests.media import RECIPES, repeat_encoded, write_media
from tests.test_hostile import busy_decoder_children, decoder_children


@pytest.fixture(scope="module")
def long_mp3(speech60, tmp_path_factory):
    """Twenty minutes of speech as MP3 (the 60 s clip's packets repeated): a prediction that lasts
    several seconds with the tiny model on two cores (ten minutes could end before a cancel)."""
    x, rate = speech60
    d = tmp_path_factory.mktemp("long")
    one = write_media(d / "one.mp3", x, rate, RECIPES["mp3"])
    return repeat_encoded(one, 20, d / "twenty-minutes.mp3")


def uri(path) -> str:
    return "data:audio/mpeg;base64," + base64.b64encode(path.read_bytes()).decode()


def start_async(server, prediction_id: str, inputs: dict) -> tuple[threading.Thread, dict]:
    """A synchronous PUT /predictions/{id} on a thread; its response lands in the returned dict."""
    result: dict = {}

    def call():
        result["status"], result["body"] = server.request("PUT", f"/predictions/{prediction_id}", {"input": inputs})
        result["at"] = time.monotonic()

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, result


def wait_running(server, within_s: float = 30) -> None:
    """Until the worker says a prediction runs (its activity file; with several slots the server
    stays READY while one prediction runs)."""
    activity = server.log_path.parent / "activity.json"
    deadline = time.monotonic() + within_s
    while True:
        try:
            if json.loads(activity.read_text())["running"]:
                return
        except (OSError, ValueError, KeyError):
            pass
        assert time.monotonic() < deadline, "the prediction never started"
        time.sleep(0.05)


def test_cancel_stops_a_long_prediction_and_the_next_one_works(server, long_mp3):
    before = sorted(os.listdir(server.tmpdir))
    thread, result = start_async(server, "cancel-me", {"audio": uri(long_mp3), "source_lang": "en"})
    wait_running(server)
    time.sleep(1.5)  # decoding and the first batches are under way
    asked = time.monotonic()
    status, _ = server.request("POST", "/predictions/cancel-me/cancel")
    assert status == 200
    thread.join(timeout=60)
    assert not thread.is_alive()
    assert result["body"]["status"] == "canceled", result["body"]
    assert result["at"] - asked < 5.0, "cancel took longer than a batch"
    assert server.ready()
    time.sleep(0.5)
    assert busy_decoder_children() == []
    assert sorted(os.listdir(server.tmpdir)) == before
    status, body = server.predict(audio=uri(long_mp3.parent / "one.mp3"), source_lang="en")
    assert body["status"] == "succeeded", body


def test_a_second_request_while_one_runs_is_served_at_once(server, long_mp3):
    """Predictions run concurrently: a short one sent while a long one runs succeeds before it."""
    thread, result = start_async(server, "long-one", {"audio": uri(long_mp3), "source_lang": "en"})
    wait_running(server)
    status, body = server.predict(audio=uri(long_mp3.parent / "one.mp3"), source_lang="en")
    assert status == 200 and body["status"] == "succeeded", body
    assert thread.is_alive(), "the long prediction should still be running"
    server.request("POST", "/predictions/long-one/cancel")
    thread.join(timeout=60)
    assert result["body"]["status"] == "canceled"
    assert server.ready()


def test_a_request_past_the_concurrency_limit_gets_409(tiny_model, long_mp3, tmp_path):
    """With one slot (ASR_MAX_CONCURRENCY=1), a second request while the first runs gets 409."""
    from tests.service import start_server, stop_server

    one = {"ASR_MAX_CONCURRENCY": "1", "COG_MAX_CONCURRENCY": "1", "ASR_LID_MODEL": "none", "ASR_DIAR_MODEL": "none"}
    srv = start_server(tiny_model, tmp_path / "server.log", env=one)
    try:
        thread, result = start_async(srv, "hold-the-slot", {"audio": uri(long_mp3), "source_lang": "en"})
        wait_running(srv)
        status, body = srv.predict(audio=uri(long_mp3.parent / "one.mp3"), source_lang="en")
        assert status == 409
        assert "busy" in body.get("error", "").lower() or "capacity" in body.get("error", "").lower(), body
        srv.request("POST", "/predictions/hold-the-slot/cancel")
        thread.join(timeout=60)
        assert srv.ready()
    finally:
        stop_server(srv)


def test_no_state_leaks_between_predictions(server, shared_audio):
    audio = "data:audio/flac;base64," + base64.b64encode((shared_audio / "jfk.flac").read_bytes()).decode()
    first = server.predict(audio=audio, source_lang="en")[1]["output"]
    other = server.predict(audio=audio, source_lang="it", target_lang="en", timestamps=False, pnc=False)[1]["output"]
    again = server.predict(audio=audio, source_lang="en")[1]["output"]
    assert (other["task"], other["source_lang"], other["srt"]) == ("translate", "it", None)
    assert again == first  # same input, same answer, whatever came in between


def test_cancel_while_the_decoder_hangs(server):
    """Cancelling must not wait for a stuck decoder's deadline: the child is stopped at once.
    The server's decoder deadline is 20 s (ASR_DECODE_TIMEOUT_S in conftest), counted from the
    child's start; the answer must come well inside it, however loaded the machine is."""
    deadline_s = 20.0
    hang = "data:audio/wav;base64," + base64.b64encode(b"ASR-FAULT:hang\n").decode()
    thread, result = start_async(server, "stuck-decoder", {"audio": hang, "source_lang": "en"})
    wait_running(server)
    wait_until(lambda: busy_decoder_children() != [], within_s=30, what="the decoder never started")
    stuck = busy_decoder_children()
    child_seen = time.monotonic()
    server.request("POST", "/predictions/stuck-decoder/cancel")
    thread.join(timeout=60)
    assert result["body"]["status"] == "canceled", result["body"]
    assert result["at"] - child_seen < deadline_s / 2, "the cancel waited for the decoder's deadline"
    wait_until(lambda: not set(stuck) & set(decoder_children()), within_s=10,
               what="the stuck decoder outlived its cancel")  # killed and reaped, not kept warm
    assert server.ready(within_s=30)


def wait_until(condition, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
