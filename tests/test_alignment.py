"""Forced alignment batched on the device (asr/models/alignment.py) against NeMo's own route.

`viterbi_batch` must give exactly NeMo's `viterbi_decoding` alignments (ties included), and
`align_hypotheses` on log-probs computed once by the caller must give the word and segment
timestamps of NeMo's `get_forced_aligned_timestamps_with_external_model` (which runs the aligner
itself): identical on the same log-probs, within one encoder frame from the audio.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")
aligner_utils = pytest.importorskip("nemo.collections.asr.parts.utils.aligner_utils")

from asr.models.alignment import PADDING_VALUE, align_hypotheses, ctc_log_probs, viterbi_batch  # noqa: E402
from asr.types import SAMPLE_RATE  # noqa: E402

from tests.conftest import ROOT  # noqa: E402
from tests.media import MISSING_AUDIO, SHARED_AUDIO  # noqa: E402

FRAME_S = 0.08
"""One encoder frame of Canary's aligner (10 ms hop x 8 subsampling)."""


# ------------------------------------------------------------------------------------------
# viterbi_batch == NeMo's viterbi_decoding
# ------------------------------------------------------------------------------------------


def random_batch(seed: int, B: int, T_max: int, V: int, coarse: bool, n_symbols: int = 3):
    """NeMo-shaped Viterbi inputs: log-probs padded with PADDING_VALUE past T_b, y = blank, t1,
    blank, t2, ..., blank padded with V past U_b (blank = V - 1). Tokens come from `n_symbols`
    symbols, so repeats (which need a blank between them) are common; token counts range from
    none to more than the frames allow. `coarse` rounds log-probs to whole numbers: many ties."""
    g = torch.Generator().manual_seed(seed)
    T = torch.randint(1, T_max + 1, (B,), generator=g)
    T[0] = T_max
    log_probs = torch.log_softmax(3 * torch.randn(B, T_max, V, generator=g), dim=-1)
    if coarse:
        log_probs = torch.round(log_probs)
    blank = V - 1
    ys = []
    for b in range(B):
        case = b % 4
        if case == 0:  # as many tokens as fit, repeats included
            n = int(T[b]) // 2
        elif case == 1:  # empty text: the blank alone
            n = 0
        elif case == 2:  # more tokens than frames: NeMo still returns an alignment
            n = int(T[b]) + 2
        else:
            n = int(torch.randint(1, int(T[b]) + 1, (1,), generator=g))
        tokens = torch.randint(0, n_symbols, (n,), generator=g).tolist()
        y = [blank]
        for tok in tokens:
            y += [tok, blank]
        ys.append(y)
    U = torch.tensor([len(y) for y in ys])
    y_batch = torch.full((B, int(U.max())), V, dtype=torch.long)
    padded = torch.full((B, T_max, V), PADDING_VALUE)
    for b, y in enumerate(ys):
        y_batch[b, : len(y)] = torch.tensor(y)
        padded[b, : T[b]] = log_probs[b, : T[b]]
    return padded, y_batch, T, U


@pytest.mark.parametrize("coarse", [False, True], ids=["fine", "ties"])
@pytest.mark.parametrize("B,T_max", [(1, 7), (1, 40), (5, 12), (8, 60)])
def test_viterbi_batch_equals_nemo(B, T_max, coarse):
    from nemo.collections.asr.parts.utils.aligner_utils import viterbi_decoding

    for seed in range(12):
        batch = random_batch(seed, B, T_max, V=6, coarse=coarse)
        expected = viterbi_decoding(*batch, viterbi_device="cpu")
        got = viterbi_batch(*batch)
        assert got == expected, f"seed {seed}"
        assert [len(a) for a in got] == batch[2].tolist()
    if coarse:  # the inputs do hold ties (several tokens equally likely in a frame)
        lp = batch[0][0]
        assert (lp.unsqueeze(2) == lp.unsqueeze(1)).sum() > lp.numel()


def test_ties_prefer_staying_then_advancing_by_one():
    """Every path scores the same: NeMo's `torch.max` keeps the first candidate (stay), and the
    backtrack starts from the second-to-last state (the final blank would be an equal end)."""
    from nemo.collections.asr.parts.utils.aligner_utils import viterbi_decoding

    log_probs = torch.zeros(1, 3, 3)  # V = 3, blank = 2
    y = torch.tensor([[2, 0, 2]])
    batch = (log_probs, y, torch.tensor([3]), torch.tensor([3]))
    assert viterbi_decoding(*batch, viterbi_device="cpu") == [[1, 1, 1]]
    assert viterbi_batch(*batch) == [[1, 1, 1]]


def test_viterbi_batch_ignores_what_lies_past_each_length():
    """The caller passes the encoder's raw padded output and y padded with anything: frames past
    T_b and states past U_b must not matter (NeMo's batch has PADDING_VALUE and V there)."""
    from nemo.collections.asr.parts.utils.aligner_utils import viterbi_decoding

    log_probs, y, T, U = random_batch(3, 6, 30, V=6, coarse=True)
    expected = viterbi_decoding(log_probs, y, T, U, viterbi_device="cpu")
    raw = log_probs.clone()
    garbage_y = y.clone()
    for b in range(len(T)):
        raw[b, T[b]:] = torch.log_softmax(torch.randn(30 - int(T[b]), 6), dim=-1)
        garbage_y[b, U[b]:] = 0
    assert viterbi_batch(raw, garbage_y, T, U) == expected


def test_viterbi_batch_casts_half_precision_log_probs():
    from nemo.collections.asr.parts.utils.aligner_utils import viterbi_decoding

    log_probs, y, T, U = random_batch(5, 4, 25, V=6, coarse=False)
    valid = (torch.arange(25).unsqueeze(0) < T.unsqueeze(1)).unsqueeze(2)
    low = torch.where(valid, log_probs, 0.0).bfloat16()  # what lies past T_b is ignored anyway
    expected = viterbi_decoding(torch.where(valid, low.float(), PADDING_VALUE), y, T, U, viterbi_device="cpu")
    assert viterbi_batch(low, y, T, U) == expected


# ------------------------------------------------------------------------------------------
# align_hypotheses == get_forced_aligned_timestamps_with_external_model, on the tiny Canary
# ------------------------------------------------------------------------------------------


TEXTS = [
    "Hello world! The quick brown fox.",
    "the lazy dog, jumps over. speech recognition?",
    "der die das und ist nicht la le les et est pas",
    "",
    " ".join(["the lazy dog jumps over"] * 30),  # more tokens than a short chunk has frames
]


@pytest.fixture(scope="module")
def canary():
    from asr.models import runtime
    from tests.service import ensure_tiny_model

    return runtime.restore(str(ensure_tiny_model("canary")), "cpu")


def decoded(path) -> np.ndarray:
    from asr.media import decode

    return decode(path).samples


@pytest.fixture(scope="module", params=["recordings", "samples"])
def chunks(request) -> list[np.ndarray]:
    """Speech chunks of 5 to 20 s: cut from the real recordings (skipped without them), or from
    the project's own samples (made by samples/make_samples.py, so this runs on a fresh clone)."""
    if request.param == "recordings":
        if not (SHARED_AUDIO / "test.wav").is_file():
            pytest.skip(MISSING_AUDIO)
        speech = decoded(SHARED_AUDIO / "test.wav")
        cuts_s = [(0.0, 5.0), (7.0, 16.3), (40.0, 60.0)]
        cut = [speech[int(a * SAMPLE_RATE): int(b * SAMPLE_RATE)] for a, b in cuts_s]
        return [*cut, decoded(SHARED_AUDIO / "jfk.flac")]
    samples = [decoded(ROOT / "samples" / name) for name in ("en.mp3", "de.m4a", "fr.ogg", "es.flac")]
    joined = np.concatenate(samples)  # one chunk longer than any sample, as the chunker makes
    return [*samples, joined[: 20 * SAMPLE_RATE]]


def hypotheses(texts):
    from nemo.collections.asr.parts.utils.rnnt_utils import Hypothesis

    return [Hypothesis(score=0.0, y_sequence=[], text=t) for t in texts]


def padded(chunks):
    lens = torch.tensor([c.size for c in chunks])
    signal = torch.zeros(len(chunks), int(lens.max()))
    for i, c in enumerate(chunks):
        signal[i, : c.size] = torch.from_numpy(c)
    return signal, lens


def assert_close(ours: dict, theirs: dict, tolerance_s: float) -> None:
    """Same keys, same words and segments in the same order, times within `tolerance_s`."""
    assert list(ours) == list(theirs)
    for kind in theirs:
        assert [e[kind] for e in ours[kind]] == [e[kind] for e in theirs[kind]]
        for a, b in zip(ours[kind], theirs[kind]):
            assert set(a) == set(b) == {kind, "start_offset", "end_offset", "start", "end"}
            assert abs(a["start"] - b["start"]) <= tolerance_s + 1e-9, (a, b)
            assert abs(a["end"] - b["end"]) <= tolerance_s + 1e-9, (a, b)
            assert abs(a["start_offset"] - b["start_offset"]) <= round(tolerance_s / FRAME_S)
            assert abs(a["end_offset"] - b["end_offset"]) <= round(tolerance_s / FRAME_S)


def test_canary_timestamps_match_nemo_within_one_frame(canary, chunks):
    """Today's route (Canary's `transcribe(timestamps=True)`, which runs the aligner on the
    audio itself) against the log-probs computed once here and aligned in one batch."""
    ctc = canary.timestamps_asr_model
    signal, lens = padded(chunks)
    log_probs, frames = ctc_log_probs(ctc, signal, lens)
    from nemo.collections.asr.models.aed_multitask_models import MultiTaskTranscriptionConfig

    config = MultiTaskTranscriptionConfig(
        batch_size=len(chunks), return_hypotheses=True, num_workers=0, verbose=False, enable_chunking=False,
        prompt={"source_lang": "en", "target_lang": "en", "pnc": "yes", "timestamp": "no"},
    )
    with torch.inference_mode():
        today = canary.transcribe(list(chunks), override_config=config, timestamps=True)
    ours = align_hypotheses(ctc, log_probs, frames, copy.deepcopy(today))
    for o, t in zip(ours, today):
        assert o.text == t.text
        assert t.timestamp["word"], "today's route gave no words to compare"
        assert_close({k: o.timestamp[k] for k in ("word", "segment")},
                     {k: t.timestamp[k] for k in ("word", "segment")}, FRAME_S)
    # the chunks are told apart: a batch that mixed up its rows would fail above
    assert len({tuple(e["end"] for e in h.timestamp["word"]) for h in ours}) == len(chunks)


def test_varied_texts_match_nemo_within_one_frame(canary, chunks):
    """Texts with commas, questions, several segments, none, and too many tokens for the audio,
    through NeMo's function itself (it runs the aligner with `transcribe`)."""
    from nemo.collections.asr.parts.utils.timestamp_utils import get_forced_aligned_timestamps_with_external_model

    ctc = canary.timestamps_asr_model
    texts = [TEXTS[i % len(TEXTS)] for i in range(len(chunks))]
    signal, lens = padded(chunks)
    log_probs, frames = ctc_log_probs(ctc, signal, lens)
    ours = align_hypotheses(ctc, log_probs, frames, hypotheses(texts))
    theirs = get_forced_aligned_timestamps_with_external_model(
        audio=[torch.from_numpy(c) for c in chunks], external_ctc_model=ctc, main_model_predictions=hypotheses(texts),
        batch_size=len(chunks), timestamp_type=["word", "segment"], viterbi_device="cpu", verbose=False,
    )
    for o, t in zip(ours, theirs):
        assert_close(o.timestamp, t.timestamp, FRAME_S)
    assert ours[3].timestamp == {"word": [], "segment": []}  # the empty text
    punctuated = ours[1].timestamp
    assert [s["segment"] for s in punctuated["segment"]] == ["the lazy dog, jumps over.", "speech recognition?"]


@pytest.mark.parametrize("timestamp_type", [["word", "segment"], "all", "word", "char"])
def test_identical_to_nemo_on_the_same_log_probs(canary, chunks, timestamp_type):
    """Given the same log-probs (NeMo's `has_hypotheses=True` route), every dict is identical."""
    from nemo.collections.asr.parts.utils.timestamp_utils import get_forced_aligned_timestamps_with_external_model

    ctc = canary.timestamps_asr_model
    texts = [TEXTS[(i + 1) % len(TEXTS)] for i in range(len(chunks))]
    signal, lens = padded(chunks)
    log_probs, frames = ctc_log_probs(ctc, signal, lens)
    ctc_hyps = hypotheses([""] * len(chunks))
    for h, row, n in zip(ctc_hyps, log_probs, frames.tolist()):
        h.y_sequence = row[:n].clone()
    theirs = get_forced_aligned_timestamps_with_external_model(
        audio=ctc_hyps, external_ctc_model=ctc, main_model_predictions=hypotheses(texts), batch_size=len(chunks),
        timestamp_type=timestamp_type, viterbi_device="cpu", has_hypotheses=True, verbose=False,
    )
    ours = align_hypotheses(ctc, log_probs, frames, hypotheses(texts), timestamp_type=timestamp_type)
    assert [o.timestamp for o in ours] == [t.timestamp for t in theirs]
    assert any(o.timestamp.get("word") or o.timestamp.get("char") for o in ours)


def test_rejects_a_batch_of_the_wrong_size(canary):
    ctc = canary.timestamps_asr_model
    with pytest.raises(ValueError, match="2 hypotheses for a batch of 3"):
        align_hypotheses(ctc, torch.zeros(3, 10, 5), [10, 10, 10], hypotheses(["a", "b"]))


def test_benchmark_runs_and_agrees():
    """benchmarks/alignment.py at a small size: both implementations timed, same alignments, and
    (--text) the same y and dicts from NeMo's text work and ours."""
    import json
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "benchmarks/alignment.py", "--batch", "4", "--frames", "40", "--tokens", "12",
                        "--vocab", "50", "--repeats", "1", "--text"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = {line["what"]: line for line in map(json.loads, r.stdout.strip().splitlines())}
    viterbi, text = out["viterbi"], out["text"]
    assert viterbi["identical"] is True
    assert viterbi["nemo_s"] > 0 and viterbi["ours_s"] > 0 and viterbi["states"] == 25
    assert text["identical"] is True and text["words_timed"] > 0 and text["blank_only"] == 0
    assert text["nemo_s"] > 0 and text["ours_s"] > 0 and text["speedup"] > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_viterbi_batch_on_cuda_equals_nemo_on_cpu():
    """The device path gives NeMo's CPU alignments (ties included) on a batch of Canary's shape."""
    from nemo.collections.asr.parts.utils.aligner_utils import viterbi_decoding

    for seed, (B, T_max, V, symbols) in enumerate([(8, 60, 6, 3), (128, 250, 1025, 1024)]):
        for coarse in (False, True):
            log_probs, y, T, U = random_batch(seed, B, T_max, V, coarse, n_symbols=symbols)
            expected = viterbi_decoding(log_probs, y, T, U, viterbi_device="cpu")
            assert viterbi_batch(log_probs.cuda(), y.cuda(), T.cuda(), U.cuda()) == expected


# ------------------------------------------------------------------------------------------
# The text work (plans instead of NeMo's Utterance trees) == NeMo's route, exactly
# ------------------------------------------------------------------------------------------


TRICKY_TEXTS = [
    *TEXTS,
    "   spaced   out \t text  ",
    "Wait... what?! Really? Yes.",
    "It's 3 a.m. in the U.S. now. e.g. this, that; and: other",
    "aaa aaa aaa bbb bbb, aaa. aaa",
    "Numbers 1, 22, 333 and 4.5%.",
    "HeLLo WoRLD. ¿Qué tal? ¡Bien! Straße café naïve",
    "Розпізнавання мовлення. 日本語のテキスト",
    "Hello . world , ! ?",
    "what ⁇ is this",  # the tokenizer's unknown-word text: NeMo's own function
    "a⁇b c. d",
    "<b> token",
    "end.",
    "?",
    ". . .",
]


def lengths_for(texts) -> list[int]:
    """Frames per text: some too few for the text (NeMo then aligns the blank alone)."""
    return [(2, 40, 90, 200)[i % 4] for i in range(len(texts))]


def fake_alignments(kind: str):
    """A stand-in for both Viterbis returning, per row, a path that depends only on the row,
    its T and its U, so NeMo's route and ours get the same path when their y are the same.
    'path' is monotone, 'skips' jumps over states (their times become -1), 'wild' is any
    sequence of ints, backwards and out of range included."""

    def alignments(log_probs, y, T, U, *args, **kwargs):
        out = []
        for b, (n, u) in enumerate(zip(T.tolist(), U.tolist())):
            g = np.random.default_rng([b, n, u, len(kind)])
            if kind == "path":
                steps = g.choice(3, size=n, p=[0.5, 0.4, 0.1])
                row = np.minimum(np.cumsum(steps) - steps[0], u - 1)
            elif kind == "skips":
                row = np.minimum(np.cumsum(g.integers(0, 5, size=n)), u - 1)
            else:
                row = g.integers(-3, u + 3, size=n)
            out.append([int(s) for s in row])
        return out

    return alignments


def nemo_timestamps(ctc, texts, T_lens, **kwargs) -> list[dict]:
    """NeMo's own `get_forced_aligned_timestamps_with_external_model` on CTC 'hypotheses' of
    the given lengths (its Viterbi is replaced by the caller)."""
    from nemo.collections.asr.parts.utils.timestamp_utils import get_forced_aligned_timestamps_with_external_model

    V = len(ctc.tokenizer.vocab) + 1 if hasattr(ctc, "tokenizer") else len(ctc.decoder.vocabulary) + 1
    ctc_hyps = hypotheses([""] * len(texts))
    for h, n in zip(ctc_hyps, T_lens):
        h.y_sequence = torch.zeros(n, V)
    out = get_forced_aligned_timestamps_with_external_model(
        audio=ctc_hyps, external_ctc_model=ctc, main_model_predictions=hypotheses(texts), batch_size=len(texts),
        viterbi_device="cpu", has_hypotheses=True, verbose=False, **kwargs)
    return [h.timestamp for h in out]


def our_timestamps(ctc, texts, T_lens, **kwargs) -> list[dict]:
    V = len(ctc.tokenizer.vocab) + 1 if hasattr(ctc, "tokenizer") else len(ctc.decoder.vocabulary) + 1
    log_probs = torch.zeros(len(texts), max(T_lens), V)
    return [h.timestamp for h in align_hypotheses(ctc, log_probs, T_lens, hypotheses(texts), **kwargs)]


@pytest.mark.parametrize("kind", ["path", "skips", "wild"])
@pytest.mark.parametrize("timestamp_type", [["word", "segment"], "all", "word", "segment", "char", ["char", "word"]])
def test_identical_to_nemo_on_any_path(canary, monkeypatch, kind, timestamp_type):
    """Every dict, for tricky texts and any alignment NeMo's bookkeeping might meet."""
    from nemo.collections.asr.parts.utils import timestamp_utils

    from asr.models import alignment

    ctc = canary.timestamps_asr_model
    fake = fake_alignments(kind)
    monkeypatch.setattr(timestamp_utils, "viterbi_decoding", fake)
    monkeypatch.setattr(alignment, "viterbi_batch", fake)
    T_lens = lengths_for(TRICKY_TEXTS)
    kwargs = {"timestamp_type": timestamp_type}
    theirs = nemo_timestamps(ctc, TRICKY_TEXTS, T_lens, **kwargs)
    ours = our_timestamps(ctc, TRICKY_TEXTS, T_lens, **kwargs)
    for text, o, t in zip(TRICKY_TEXTS, ours, theirs):
        assert o == t, text
        assert json_dumps(o) == json_dumps(t), text  # ints stay ints (-1), floats floats
    assert sum(len(v) for o in ours for v in o.values()) > 20


def json_dumps(value) -> str:
    import json

    return json.dumps(value)


@pytest.mark.parametrize("separators,word_separator", [
    (None, " "), (["."], " "), (".", " "), ("...", " "), ([",", "..."], " "), (["?", "!"], None),
    (["."], ""), (["."], ","),
])
def test_identical_to_nemo_with_other_separators(canary, monkeypatch, separators, word_separator):
    from nemo.collections.asr.parts.utils import timestamp_utils

    from asr.models import alignment

    ctc = canary.timestamps_asr_model
    monkeypatch.setattr(timestamp_utils, "viterbi_decoding", fake_alignments("path"))
    monkeypatch.setattr(alignment, "viterbi_batch", fake_alignments("path"))
    texts = [*TRICKY_TEXTS, "a,,b, c", ",start and end,"]
    T_lens = [200] * len(texts)
    kwargs = {"segment_separators": separators, "word_separator": word_separator,
              "timestamp_type": ["segment", "word", "char"]}
    assert our_timestamps(ctc, texts, T_lens, **kwargs) == nemo_timestamps(ctc, texts, T_lens, **kwargs)


def test_plans_are_nemos_utterances(canary):
    """The fast path's plan of each text is the plan of NeMo's Utterance, and its token count
    is the one NeMo checks against the frames (tokenised once, not twice)."""
    from nemo.collections.asr.parts.utils.aligner_utils import get_utt_obj

    from asr.models.alignment import plan_from_utterance, prepare_texts

    ctc = canary.timestamps_asr_model
    for separators in (None, [".", "?", "!", "..."]):
        prepared = prepare_texts(ctc, TRICKY_TEXTS, separators)
        for text, plan, n in zip(prepared.texts, prepared.plans, prepared.check_tokens):
            utt = get_utt_obj(text, 10**9, ctc, segment_separators=separators)
            assert plan == plan_from_utterance(utt), text
            assert n == (len(ctc.tokenizer.text_to_ids(text)) if text else 0)
        assert prepared.blank.token_ids == (ctc.tokenizer.vocab_size,) and prepared.blank.segments == ()


def test_word_cache_gives_the_same_plans(canary, monkeypatch):
    """A second batch reads its words from the cache; with no cache every word is tokenised."""
    from asr.models import alignment

    ctc = canary.timestamps_asr_model
    first = alignment.prepare_texts(ctc, TRICKY_TEXTS)
    again = alignment.prepare_texts(ctc, TRICKY_TEXTS)
    monkeypatch.setattr(alignment, "WORD_CACHE_SIZE", 0)
    alignment._word_caches.clear()
    uncached = alignment.prepare_texts(ctc, TRICKY_TEXTS)
    assert first == again == uncached
    assert not alignment._word_cache(ctc.tokenizer)


def test_fails_where_nemo_fails(canary):
    """A word NeMo cannot restore the case of (a ligature the tokenizer normalises) raises the
    same error, cached or not."""
    from nemo.collections.asr.parts.utils.aligner_utils import get_utt_obj

    from asr.models.alignment import prepare_texts

    ctc = canary.timestamps_asr_model
    with pytest.raises(RuntimeError, match="capitalization") as nemo_error:
        get_utt_obj("ﬁne day", 10**9, ctc)
    for _ in range(2):
        with pytest.raises(RuntimeError) as ours:
            prepare_texts(ctc, ["a fine day", "ﬁne day"])
        assert str(ours.value) == str(nemo_error.value)


class CharModel:
    """A character-vocabulary CTC model as `get_utt_obj` sees one (no tokenizer)."""

    def __init__(self):
        from types import SimpleNamespace

        self.decoder = SimpleNamespace(vocabulary=[" ", *"abcdefghijklmnopqrstuvwxyz", "'", ".", ","])
        self.encoder = SimpleNamespace(subsampling_factor=4)
        self.cfg = {"preprocessor": {"window_stride": 0.01}}


@pytest.mark.parametrize("kind", ["path", "skips", "wild"])
def test_char_model_identical_to_nemo(monkeypatch, kind):
    from nemo.collections.asr.parts.utils import timestamp_utils

    from asr.models import alignment

    fake = fake_alignments(kind)
    monkeypatch.setattr(timestamp_utils, "viterbi_decoding", fake)
    monkeypatch.setattr(alignment, "viterbi_batch", fake)
    model = CharModel()
    texts = [t.lower() for t in TRICKY_TEXTS] + ["hello world. the cat sat, on the mat. ok", "aa bb"]
    T_lens = lengths_for(texts)
    for timestamp_type in (["word", "segment"], "word", "segment"):
        kwargs = {"timestamp_type": timestamp_type}
        assert our_timestamps(model, texts, T_lens, **kwargs) == nemo_timestamps(model, texts, T_lens, **kwargs)
