"""Hotwords and word confidence: the phrase list is checked, boosting changes what the tiny models
write only when asked, requests group by phrase set, and every word carries a confidence."""

from __future__ import annotations

import numpy as np
import pytest

from asr import hotwords
from asr.errors import InputError
from asr.serving import BatchKey
from asr.testing.canary import TINY_DOUBT, TINY_PHRASE
from asr.types import SAMPLE_RATE, Hotwords, Request

WORD, RIVAL = TINY_DOUBT


# -- the phrase list ---------------------------------------------------------------------------


def test_parse_cleans_and_keeps_order():
    assert hotwords.parse(["  Kubernetes ", "NVIDIA  NeMo", "Kubernetes"]) == ("Kubernetes", "NVIDIA NeMo")
    assert hotwords.parse(None) == () and hotwords.parse([]) == ()


@pytest.mark.parametrize("phrases,boost,message", [
    (["x"] * 0 + [f"w{i}" for i in range(101)], 1.0, "101 phrases given; at most 100"),
    (["a" * 51], 1.0, "51 characters; at most 50"),
    (["ok", "   "], 1.0, "phrase 2 is empty"),
    (["tab\there", "zero\u200bwidth"], 1.0, "phrase 2 contains a control or invisible character"),
    (["ok"], 11.0, "hotwords_boost 11 is outside 0.1 to 10"),
])
def test_parse_refuses_with_a_clear_message(phrases, boost, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        hotwords.parse(phrases, boost)


def test_forms_follow_the_models_casing():
    cased, notes = hotwords.for_model(("kubernetes", "NVIDIA nemo"), 2.0, cased=True)
    assert cased == Hotwords(("Kubernetes", "NVIDIA Nemo", "NVIDIA nemo", "kubernetes"), 2.0) and notes == ()
    lower, notes = hotwords.for_model(("Kubernetes",), 1.0, cased=False)
    assert lower.phrases == ("kubernetes",) and "lower-cased" in notes[0]
    assert hotwords.for_model((), 1.0, cased=True) == (None, ())


def test_requests_with_the_same_phrase_set_share_batches():
    a, _ = hotwords.for_model(("dog", "cat"), 1.0, cased=False)
    b, _ = hotwords.for_model(("cat", "dog", "dog"), 1.0, cased=False)
    c, _ = hotwords.for_model(("cat",), 1.0, cased=False)
    key = lambda h: BatchKey("m", Request("en", "en", hotwords=h))  # noqa: E731
    assert key(a) == key(b) and hash(key(a)) == hash(key(b))
    assert key(a) != key(c) and key(a) != key(None)


# -- the tiny models -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chunks(shared_audio):
    import soundfile as sf
    import soxr

    audio, rate = sf.read(str(shared_audio / "jfk.flac"), dtype="float32")
    audio = soxr.resample(audio if audio.ndim == 1 else audio.mean(axis=1), rate, SAMPLE_RATE).astype(np.float32)
    return [audio[: 8 * SAMPLE_RATE], audio[2 * SAMPLE_RATE: 5 * SAMPLE_RATE]]


def load(kind: str):
    from asr.models import load_models
    from tests.service import ensure_tiny_model

    return load_models(str(ensure_tiny_model(kind)), device="cpu").default


@pytest.fixture(scope="module")
def canary():
    return load("canary")


def test_canary_writes_a_boosted_phrase_it_does_not_say(canary, chunks):
    plain = canary.transcribe(chunks, Request("en", "en"))
    assert [r.text for r in plain] == [TINY_PHRASE] * 2, "no hotwords: today's output"
    boosted, _ = hotwords.for_model(hotwords.parse([RIVAL], 4.0), 4.0, cased=True)
    out = canary.transcribe(chunks, Request("en", "en", hotwords=boosted))
    assert [r.text for r in out] == [TINY_PHRASE.replace(WORD, RIVAL)] * 2
    assert [w.text for w in out[0].words][-1] == RIVAL + "."
    again = canary.transcribe(chunks, Request("en", "en"))
    assert again == plain, "a boosted request leaves the next plain one unchanged"
    weak, _ = hotwords.for_model(("dog",), 0.1, cased=True)
    assert canary.transcribe(chunks, Request("en", "en", hotwords=weak))[0].text == TINY_PHRASE, \
        "a weak boost does not overturn the model"


def test_canary_confidence_is_lowest_where_the_model_doubts(canary, chunks):
    for request in (Request("en", "en"), Request("en", "en", timestamps=False)):
        r = canary.transcribe(chunks, request)[0]
        assert 0.0 < r.confidence < 1.0
        if request.timestamps:
            conf = {w.text: w.confidence for w in r.words}
            assert len(conf) == len(TINY_PHRASE.split()) and all(0.0 < c <= 1.0 for c in conf.values())
            doubt = conf.pop(WORD + ".")
            assert doubt < 0.9 and min(conf.values()) > 0.99, "only the doubtful word is unsure"
            assert [s.confidence for s in r.segments][-1] < [s.confidence for s in r.segments][0]
    # the boosted word keeps the model's own (low) probability: boosting does not make it surer
    boosted, _ = hotwords.for_model((RIVAL,), 4.0, cased=True)
    r = canary.transcribe(chunks, Request("en", "en", hotwords=boosted))[0]
    assert r.words[-1].confidence < 0.5


def test_canary_keeps_while_decoding_the_probabilities_a_second_pass_gives(canary, chunks):
    """Our greedy decoder keeps each token's probability as it decodes; they are the ones the
    teacher-forced pass (used after a beam search) reads, so a word's confidence does not depend
    on which path produced it."""
    import torch

    from asr.models import batching, confidence

    model = canary.model
    assert canary.fast_decoder is not None
    with torch.inference_mode():
        _, feats, lens = batching.prepare(canary.staging, model.preprocessor, chunks, canary.stages)
        states, mask = canary._encode(feats, lens)
        prompt = canary._prompt(Request("en", "en"), False, len(chunks))
        hyps = model.decoding.decode_predictions_tensor(encoder_hidden_states=states, encoder_input_mask=mask,
                                                        decoder_input_ids=prompt, return_hypotheses=True)
        kept = confidence.kept_token_logprobs(hyps)
        scored = confidence.aed_token_logprobs(model, states, mask, prompt, hyps)
    assert kept is not None and [len(k) for k in kept] == [len(confidence.token_ids(h)) for h in hyps]
    for a, b in zip(kept, scored):
        np.testing.assert_allclose(a, b, atol=1e-4)
    assert min(float(k.min()) for k in kept) < np.log(0.9), "the doubtful word is among them"


@pytest.mark.parametrize("kind", ["parakeet-tdt", "ctc"])
def test_transducer_and_ctc_boost_and_score(kind, chunks):
    model = load(kind)
    assert model.capabilities.boosting
    plain = model.transcribe(chunks, Request("en", "en"))
    assert all(w.confidence is not None and 0.0 < w.confidence <= 1.0 for r in plain for w in r.words)
    assert all(r.words for r in plain)
    said = plain[0].text.split()[0]
    boosted, _ = hotwords.for_model((said, "zebra"), 2.0, cased=model.capabilities.cased)
    out = model.transcribe(chunks, Request("en", "en", hotwords=boosted))
    assert out[0].text.split()[0] == said, "boosting a word the model says keeps it"
    assert all(w.confidence is not None for r in out for w in r.words)
    assert model.transcribe(chunks, Request("en", "en")) == plain


# -- over HTTP -----------------------------------------------------------------------------------


def jfk_uri(shared_audio) -> str:
    import base64

    return "data:audio/flac;base64," + base64.b64encode((shared_audio / "jfk.flac").read_bytes()).decode()


def test_http_hotwords_change_only_the_requests_that_send_them(server, shared_audio):
    uri = jfk_uri(shared_audio)
    status, body = server.predict(audio=uri, source_lang="en", hotwords=[RIVAL], hotwords_boost=4.0)
    assert status == 200 and body["status"] == "succeeded", body
    out = body["output"]
    assert out["text"] == TINY_PHRASE.replace(WORD, RIVAL)
    words = [w for s in out["segments"] for w in s["words"]]
    assert words and all(0.0 <= w["confidence"] <= 1.0 for w in words)
    assert all(0.0 <= s["confidence"] <= 1.0 for s in out["segments"])
    status, body = server.predict(audio=uri, source_lang="en")
    assert body["status"] == "succeeded" and body["output"]["text"] == TINY_PHRASE
    doubt = [w for s in body["output"]["segments"] for w in s["words"] if w["word"].startswith(WORD)]
    others = [w for s in body["output"]["segments"] for w in s["words"] if not w["word"].startswith(WORD)]
    assert doubt and max(w["confidence"] for w in doubt) < min(w["confidence"] for w in others)


def test_http_hotwords_are_lower_cased_for_a_lower_case_model_with_a_warning(server, shared_audio, tiny_parakeet):
    status, body = server.predict(audio=jfk_uri(shared_audio), model=tiny_parakeet.stem, hotwords=["Seven"])
    assert body["status"] == "succeeded", body
    assert any("lower-cased" in w for w in body["output"]["warnings"])


@pytest.mark.parametrize("inputs,message", [
    ({"hotwords": [f"w{i}" for i in range(101)]}, "at most 100"),
    ({"hotwords": ["x" * 60]}, "at most 50"),
    ({"hotwords": [""]}, "phrase 1 is empty"),
])
def test_http_bad_phrase_lists_fail_clearly(server, shared_audio, inputs, message):
    status, body = server.predict(audio=jfk_uri(shared_audio), source_lang="en", **inputs)
    assert body["status"] == "failed" and message in body["error"] and "Traceback" not in body["error"]
    assert server.ready()


def test_http_boost_out_of_range_is_a_validation_error(server, shared_audio):
    status, body = server.request("POST", "/predictions", {"input": {
        "audio": jfk_uri(shared_audio), "source_lang": "en", "hotwords": ["dog"], "hotwords_boost": 50}})
    assert status == 422 or body.get("status") == "failed", body
