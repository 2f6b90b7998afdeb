"""Many users at once over real HTTP: clips sent together get what each gets alone, and
cancelling one of them leaves the others' results whole."""

from __future__ import annotations

import base64
import io
import threading

import numpy as np
import pytest
import soundfile as sf

from tests.test_lifecycle import long_mp3, start_async, uri, wait_running  # noqa: F401 - fixture

LENGTHS_S = (6.0, 9.5, 13.0, 17.5, 22.0, 27.0)
"""Different lengths, so the chunks of several clips share padded batches."""


@pytest.fixture(scope="module")
def clips(speech60) -> list[str]:
    x, rate = speech60
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    out = []
    for k, seconds in enumerate(LENGTHS_S):
        start = int(k * 5.3 * rate) % (x.size - int(seconds * rate))
        buf = io.BytesIO()
        sf.write(buf, x[start : start + int(seconds * rate)], rate, format="WAV")
        out.append("data:audio/wav;base64," + base64.b64encode(buf.getvalue()).decode())
    return out


def what_a_user_sees(body: dict) -> list:
    """Every segment's and word's text and times (confidences are floats of the model's
    probabilities, which a batch of another shape may round differently)."""
    assert body["status"] == "succeeded", body
    return [(s["start"], s["end"], s["text"], [(w["word"], w["start"], w["end"]) for w in s["words"]])
            for s in body["output"]["segments"]]


def at_once(server, requests: dict[str, dict]) -> dict[str, dict]:
    threads = {pid: start_async(server, pid, inputs) for pid, inputs in requests.items()}
    for thread, _ in threads.values():
        thread.join(timeout=300)
    return {pid: result["body"] for pid, (_, result) in threads.items()}


def test_clips_sent_at_once_get_what_each_gets_alone(server, clips):
    alone = []
    for audio in clips:
        status, body = server.predict(audio=audio, source_lang="en")
        assert status == 200
        alone.append(what_a_user_sees(body))
    assert len({repr(a) for a in alone}) == len(clips), "each clip has its own result"
    together = at_once(server, {f"many-{i}": {"audio": audio, "source_lang": "en"} for i, audio in enumerate(clips)})
    for i in range(len(clips)):
        assert what_a_user_sees(together[f"many-{i}"]) == alone[i], f"clip {i} ({LENGTHS_S[i]} s)"


def test_cancelling_one_among_many_leaves_the_others_whole(server, clips, long_mp3):  # noqa: F811
    alone = []
    for audio in clips[:3]:
        status, body = server.predict(audio=audio, source_lang="en")
        alone.append(what_a_user_sees(body))
    long_thread, long_result = start_async(server, "to-cancel", {"audio": uri(long_mp3), "source_lang": "en"})
    wait_running(server)
    results: dict = {}
    others = threading.Thread(target=lambda: results.update(at_once(
        server, {f"kept-{i}": {"audio": audio, "source_lang": "en"} for i, audio in enumerate(clips[:3])})))
    others.start()
    server.request("POST", "/predictions/to-cancel/cancel")
    long_thread.join(timeout=120)
    others.join(timeout=300)
    assert long_result["body"]["status"] == "canceled"
    for i in range(3):
        assert what_a_user_sees(results[f"kept-{i}"]) == alone[i], f"clip {i}"
    assert server.ready()
