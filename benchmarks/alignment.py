"""Forced-alignment Viterbi: NeMo's `viterbi_decoding` against `asr.models.alignment.viterbi_batch`.

    .venv/bin/python benchmarks/alignment.py                      # CPU, 128 x 250 frames
    .venv/bin/python benchmarks/alignment.py --device cuda        # on a GPU host
    .venv/bin/python benchmarks/alignment.py --text               # also the per-utterance text work

The shape is one batch of Canary chunks: 128 utterances of 250 encoder frames (20 s at 80 ms),
90 tokens each (181 states with the blanks), 1,025 classes (Canary-1B-v2's aligner vocabulary with
its blank). Log-probs are random (the arithmetic does not depend on them) and start on `--device`,
as they would after the aligner's encoder. Each timing is the best of `--repeats`, with the device
synchronised before and after. Prints one JSON line per measurement: both timings, their ratio,
and whether the alignments are identical.

`--text` adds the host-side work around Viterbi for a batch of the same shape with realistic texts
and the tiny Canary's tokenizer (the part of `align_hypotheses` that stays in Python): NeMo's
(`get_utt_obj`, `add_t_start_end_to_utt_obj`, `process_timestamps`) against ours (plans), in the
same run, with their ratio and whether y and every dict are identical.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

log = logging.getLogger("benchmarks.alignment")


def synthetic_batch(batch: int, frames: int, tokens: int, vocab: int, device: str, seed: int = 0):
    """(log_probs (B, T, V) on device, y (B, 2 * tokens + 1), T_lens, U_lens) as NeMo's
    `get_batch_variables` lays them out (blank = V - 1 between and around the tokens)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    log_probs = torch.log_softmax(torch.randn(batch, frames, vocab, generator=g), dim=-1).to(device)
    blank = vocab - 1
    y = torch.full((batch, 2 * tokens + 1), blank, dtype=torch.long)
    y[:, 1::2] = torch.randint(0, vocab - 1, (batch, tokens), generator=g)
    T_lens = torch.full((batch,), frames, dtype=torch.long)
    U_lens = torch.full((batch,), 2 * tokens + 1, dtype=torch.long)
    return log_probs, y, T_lens, U_lens


def best_of(repeats: int, device: str, fn):
    """(best seconds, last result), synchronising `device` around each call."""
    import torch

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    best, result = float("inf"), None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best, result


def viterbi_timings(args) -> dict:
    import torch
    from nemo.collections.asr.parts.utils.aligner_utils import viterbi_decoding

    from asr.models.alignment import viterbi_batch

    log_probs, y, T_lens, U_lens = synthetic_batch(args.batch, args.frames, args.tokens, args.vocab, args.device)
    y_dev = y.to(args.device)
    with torch.inference_mode():
        viterbi_batch(log_probs[:2], y_dev[:2], T_lens[:2], U_lens[:2])  # warm-up (kernels, allocator)
        ours_s, ours = best_of(args.repeats, args.device, lambda: viterbi_batch(log_probs, y_dev, T_lens, U_lens))
        nemo_s, nemo = best_of(args.repeats, args.device,
                               lambda: viterbi_decoding(log_probs, y, T_lens, U_lens, viterbi_device=args.device))
    return {
        "what": "viterbi", "device": args.device, "threads": torch.get_num_threads(), "batch": args.batch, "frames": args.frames,
        "states": 2 * args.tokens + 1, "vocab": args.vocab, "repeats": args.repeats,
        "nemo_s": round(nemo_s, 4), "ours_s": round(ours_s, 4), "speedup": round(nemo_s / ours_s, 2),
        "identical": ours == nemo,
    }


PASSAGE = """
Good morning, everyone, and thank you for coming. Today I want to talk about three things: where
the project stands, what we learned this year, and what comes next. First, where we stand. In
March we had two people and a prototype that crashed twice a day. Now we have eleven people, four
customers, and a service that has been up for ninety-eight days in a row. That is not an accident.
It took a lot of late nights, a few hard arguments, and one very long weekend in August. Second,
what we learned. We learned that the slowest part of a system is rarely the part you expect. We
spent weeks tuning the model, and then found that half of the time went into reading files. We
learned to measure before we change anything, and to write the number down. Does that sound
obvious? It is, and we still forgot it more than once! We also learned that customers do not care
about our architecture. They care whether the transcript is right, whether it arrives on time, and
whether the timestamps line up with the video. So what comes next? We will support six more
languages by the end of the spring, starting with German, French and Spanish. We will cut the cost
of an hour of audio by half, which means every stage has to get faster, not just the model. And we
will open the service to smaller teams, with a free tier for students and researchers. I know some
of you are worried about the schedule. Honestly, so am I. But at 9 a.m. on Monday we start the
first of these, and I would rather be early and wrong than late and right. Any questions? Yes, at
the back... the budget? The budget is approved until June, and we will review it in May. Thank you.
"""


def realistic_texts(tokenizer, batch: int, tokens: int, words: int = 0) -> list[str]:
    """`batch` different texts of about `tokens` tokens each (Canary's chunks: ~90 tokens per
    20 s), or of `words` words each when given: windows of a talk-like passage, each starting at
    another word."""
    passage = PASSAGE.split()
    counts = [len(tokenizer.text_to_ids(w)) for w in passage] if not words else [0] * len(passage)
    texts = []
    for i in range(batch):
        at, taken, n = (i * 37) % len(passage), [], 0
        while (len(taken) < words) if words else (n < tokens):
            taken.append(passage[at % len(passage)])
            n += counts[at % len(passage)]
            at += 1
        texts.append(" ".join(taken))
    return texts


def nemo_process_timestamps(utt, frame_s: float, types, punctuation, ctc_model) -> dict:
    """NeMo 3.0's nested `process_timestamps` (timestamp_utils.py, not importable on its own),
    the same logic: the dicts from a timed Utterance tree."""
    from nemo.collections.asr.parts.utils.aligner_utils import BLANK_TOKEN, Segment, Word

    def offset(t):
        return int(t / frame_s) if t != -1 else -1

    def times(start, end):
        return {"start_offset": offset(start), "end_offset": offset(end), "start": round(start, 2),
                "end": round(end, 2)}

    out = {t: [] for t in types}
    for segment in utt.segments_and_tokens:
        if not isinstance(segment, Segment):
            continue
        if "segment" in out:
            out["segment"].append({"segment": segment.text, **times(segment.t_start, segment.t_end)})
        for word in segment.words_and_tokens:
            if not isinstance(word, Word):
                continue
            if "word" in out:
                out["word"].append({"word": word.text, **times(word.t_start, word.t_end)})
            for i, token in enumerate(word.tokens):
                if token.text == BLANK_TOKEN:
                    continue
                if token.text in punctuation:
                    j = i - 1
                    while j >= 0 and word.tokens[j].text == BLANK_TOKEN:
                        j -= 1
                    previous_end = round(word.tokens[j].t_end, 2) if j >= 0 else round(token.t_start, 2)
                    if "segment" in out and segment.t_end == word.t_end:
                        out["segment"][-1].update(end=previous_end, end_offset=offset(previous_end))
                    if "word" in out and word.t_end == token.t_end:
                        out["word"][-1].update(end=previous_end, end_offset=offset(previous_end))
                    token.t_end = token.t_start = previous_end
                if "char" in out:
                    out["char"].append({"char": ctc_model.tokenizer.ids_to_text([token.token_id]),
                                        "token_id": token.token_id, "token": token.text,
                                        **times(token.t_start, token.t_end)})
    return out


def nemo_text_work(ctc, texts, T_lens, alignments, vocab: int, frame_s: float, types, punctuation):
    """NeMo's host work around Viterbi (the text half of `get_batch_variables`, then
    `add_t_start_end_to_utt_obj` and `process_timestamps`): (y, dicts)."""
    import torch
    from nemo.collections.asr.parts.utils.aligner_utils import add_t_start_end_to_utt_obj, get_utt_obj

    from asr.models.alignment import DEFAULT_SEGMENT_SEPARATORS

    separators = list(DEFAULT_SEGMENT_SEPARATORS)
    utts = [get_utt_obj(" ".join(t.split()), T, ctc, separators, " ") for t, T in zip(texts, T_lens)]
    U_lens = [len(u.token_ids_with_blanks) for u in utts]
    y = vocab * torch.ones((len(utts), max(U_lens)), dtype=torch.int64)
    for b, u in enumerate(utts):
        y[b, : U_lens[b]] = torch.tensor(u.token_ids_with_blanks)
    stamps = [nemo_process_timestamps(add_t_start_end_to_utt_obj(u, a, frame_s), frame_s, types, punctuation, ctc)
              for u, a in zip(utts, alignments)]
    return y, stamps


def our_text_work(ctc, texts, T_lens, alignments, vocab: int, types, punctuation):
    """The same with `prepare_texts` (before the frame counts are read: it overlaps the GPU),
    `fit_to_frames` and `batch_timestamps` (after Viterbi's read-back): (y, dicts, seconds
    after the read-back)."""
    from asr.models.alignment import batch_timestamps, fit_to_frames, prepare_texts

    batch = fit_to_frames(ctc, prepare_texts(ctc, texts), T_lens, vocab)
    start = time.perf_counter()
    stamps = batch_timestamps(ctc, batch, alignments, types, punctuation)
    return batch.y, stamps, time.perf_counter() - start


def text_timings(args) -> dict:
    """Host-side text work of `align_hypotheses` against NeMo's for one batch of realistic texts,
    with the tiny Canary aligner's tokenizer and paths from its Viterbi on random log-probs. Ours
    is timed with every word tokenised (no word cache: the floor of the gain) and with the words
    already cached (steady state: speech repeats its words)."""
    import torch

    from asr.models import alignment, runtime
    from asr.models.alignment import DEFAULT_SUPPORTED_PUNCTUATION, DEFAULT_TIMESTAMP_TYPES, viterbi_batch
    from tests.service import ensure_tiny_model

    with runtime.quiet_nemo():
        model = runtime.restore(str(ensure_tiny_model("canary")), "cpu")
    ctc = model.timestamps_asr_model
    vocab = ctc.decoder.num_classes_with_blank
    texts = realistic_texts(ctc.tokenizer, args.batch, args.tokens, args.words)
    T_lens = [args.frames] * args.batch
    types, punctuation = list(DEFAULT_TIMESTAMP_TYPES), DEFAULT_SUPPORTED_PUNCTUATION
    batch = alignment.prepare_batch(ctc, texts, T_lens, vocab)
    g = torch.Generator().manual_seed(1)
    log_probs = torch.log_softmax(torch.randn(args.batch, args.frames, vocab, generator=g), dim=-1)
    alignments = viterbi_batch(log_probs, batch.y, torch.tensor(batch.T_lens), torch.tensor(batch.U_lens))

    def ours():
        return our_text_work(ctc, texts, T_lens, alignments, vocab, types, punctuation)

    with runtime.quiet_nemo():
        nemo_s, (nemo_y, nemo_stamps) = best_of(args.repeats, "cpu", lambda: nemo_text_work(
            ctc, texts, T_lens, alignments, vocab, batch.frame_s, types, punctuation))
    size = alignment.WORD_CACHE_SIZE
    try:
        alignment.WORD_CACHE_SIZE = 0
        alignment._word_caches.clear()
        uncached_s, (uncached_y, uncached_stamps, _) = best_of(args.repeats, "cpu", ours)
    finally:
        alignment.WORD_CACHE_SIZE = size
    ours()  # fills the word cache
    ours_s, (y, stamps, _) = best_of(args.repeats, "cpu", ours)
    after_s = min(ours()[2] for _ in range(args.repeats))
    return {
        "what": "text", "batch": args.batch, "frames": args.frames, "repeats": args.repeats,
        "tokens_per_text": round(sum(len(ctc.tokenizer.text_to_ids(t)) for t in texts) / len(texts), 1),
        "words_per_text": round(sum(len(t.split()) for t in texts) / len(texts), 1),
        "nemo_s": round(nemo_s, 4), "ours_uncached_s": round(uncached_s, 4), "ours_s": round(ours_s, 4),
        "ours_after_viterbi_s": round(after_s, 4),
        "speedup_uncached": round(nemo_s / uncached_s, 2), "speedup": round(nemo_s / ours_s, 2),
        "blank_only": sum(n == 1 for n in batch.U_lens),
        "identical": bool(uncached_stamps == stamps == nemo_stamps and torch.equal(uncached_y, nemo_y)
                          and torch.equal(y, nemo_y)),
        "words_timed": sum(len(s["word"]) for s in stamps),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--frames", type=int, default=250, help="encoder frames per utterance (80 ms each)")
    parser.add_argument("--tokens", type=int, default=90, help="tokens per utterance (states = 2 x tokens + 1)")
    parser.add_argument("--words", type=int, default=0,
                        help="--text: texts of this many words instead of --tokens tokens (the tiny tokenizer "
                             "cuts ~3.8 tokens a word, Canary's aligner fewer)")
    parser.add_argument("--vocab", type=int, default=1025, help="aligner classes, blank included")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--text", action="store_true", help="also time the host text work, NeMo's against ours, on the tiny Canary")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(json.dumps(viterbi_timings(args)), flush=True)
    if args.text:
        print(json.dumps(text_timings(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
