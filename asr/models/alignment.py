"""Forced alignment of decoded text to an auxiliary CTC model's log-probs, batched on the device.

Canary's word and segment timestamps come from a CTC model packed inside the .nemo: NeMo's
`get_forced_aligned_timestamps_with_external_model` runs that model on the audio again, then
`viterbi_decoding`, whose backtrack reads every backpointer with `int(...)` (B x T host syncs:
0.41 s per batch of 128 x 250 frames on an H200, against 0.024 s here; benchmarks/alignment.py).
This module is the same computation for a caller that already ran the CTC model in its own batch
path:

- `viterbi_batch`: NeMo's `viterbi_decoding`, same inputs, same tie-breaking, same output, with
  the time loop and the backtrack as tensor ops and one host transfer at the end.
- `align_hypotheses`: NeMo's `get_forced_aligned_timestamps_with_external_model` from log-probs the
  caller computed; it sets `hyp.timestamp` to the same dicts (word / segment, with NeMo's
  punctuation refinement). The text work is NeMo's `get_utt_obj` and `add_t_start_end_to_utt_obj`
  laid out as flat tuples ("plans") instead of NeMo's object trees, each distinct word tokenised
  once; character models and texts holding the tokenizer's unknown-word text take NeMo's
  `get_utt_obj` itself. Tests hold every dict equal to NeMo's function's.
- `ctc_log_probs`: the aligner's forward for a padded batch, for tests and simple callers.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

PADDING_VALUE = -3.4e38
"""NeMo's `padding_value` for Viterbi: the smallest float32, a 'probability' of almost nothing."""

DEFAULT_SEGMENT_SEPARATORS = (".", "?", "!", "...")
DEFAULT_SUPPORTED_PUNCTUATION = frozenset({",", ".", "!", "?"})
DEFAULT_TIMESTAMP_TYPES = ("word", "segment")
"""What Canary's `transcribe(timestamps=True)` asks NeMo for on chunks it does not merge."""
_TIMESTAMP_TYPES = ("segment", "word", "char")


def viterbi_batch(
    log_probs: torch.Tensor,
    y: torch.Tensor,
    T_lens: torch.Tensor,
    U_lens: torch.Tensor,
    padding_value: float = PADDING_VALUE,
) -> list[list[int]]:
    """NeMo's `viterbi_decoding` (aligner_utils.py), vectorised over batch, time loop on the device.

    log_probs: (B, T_max, V) on the device to run on, any float dtype (gathered, then cast to
        float32 as NeMo's padded float32 batch would hold them); frames at t >= T_lens[b] are ignored.
    y: (B, U_max) long, each utterance's token ids with a blank before, between and after them;
        positions at u >= U_lens[b] are ignored (NeMo pads them with V).
    T_lens, U_lens: (B,) frames and states per utterance.

    Returns, per utterance, the state index for each of its T_lens[b] frames, exactly as NeMo's
    function does (ties go to staying, then to advancing by one: `torch.max`'s first index, the
    same op NeMo uses). Nothing is read back to the host until the single transfer at the end.
    """
    import torch

    with torch.no_grad():  # no autograd graph, whatever the caller's mode
        return _viterbi_batch(log_probs, y, T_lens, U_lens, padding_value)


def _viterbi_batch(log_probs, y, T_lens, U_lens, padding_value: float) -> list[list[int]]:
    import torch

    device = log_probs.device
    B, T_max, V = log_probs.shape
    U_max = y.shape[1]
    if B == 0:
        return []
    y = y.to(device=device, dtype=torch.long)
    T_lens = T_lens.to(device=device, dtype=torch.long)
    U_lens = U_lens.to(device=device, dtype=torch.long)

    t_idx = torch.arange(T_max, device=device)
    u_idx = torch.arange(U_max, device=device)
    u_valid = u_idx.unsqueeze(0) < U_lens.unsqueeze(1)  # (B, U)
    t_valid = t_idx.unsqueeze(0) < T_lens.unsqueeze(1)  # (B, T)

    # Emission scores of every state at every frame, gathered once, time first so that each
    # step reads one contiguous (B, U) slice: (T, B, U). NeMo pads the vocabulary with a column
    # of padding_value and y with its index; frames beyond T_b are padding_value in its batch too.
    index = torch.where(u_valid, y, 0).clamp_(0, V - 1)
    emit = torch.gather(log_probs.transpose(0, 1), 2, index.unsqueeze(0).expand(T_max, B, U_max)).float()
    pad = torch.tensor(padding_value, dtype=torch.float32, device=device)
    t_valid = t_valid.T  # (T, B)
    emit = torch.where(t_valid.unsqueeze(2) & u_valid.unsqueeze(0), emit, pad)
    # NeMo's per-frame mask: past an utterance's end, its two possible final states cost nothing
    # (NeMo multiplies by a 0/1 mask; so does this, so even the sign of zero is the same).
    can_be_final = (u_idx.unsqueeze(0) == U_lens.unsqueeze(1)) | (u_idx.unsqueeze(0) == U_lens.unsqueeze(1) - 1)
    keep = torch.logical_not(torch.logical_not(t_valid).unsqueeze(2) & can_be_final.unsqueeze(0))
    first_frame = emit[0].clone()  # NeMo starts from the unmasked first frame
    emit.mul_(keep)

    # y with NeMo's padding (V) past U_b, for the repetition mask: a state may skip the one
    # before it only when its token differs from the token two back (no blank<->blank skips,
    # no skipping the blank between two equal tokens).
    y_padded = torch.where(u_valid, y, V)
    repeat = torch.zeros((B, U_max), dtype=torch.bool, device=device)
    if U_max > 2:
        repeat[:, 2:] = y_padded[:, 2:] == y_padded[:, :-2]

    # v holds the previous frame's scores behind two columns of padding, so that "one state
    # back" and "two states back" are views rather than rolls. The three candidates (stay,
    # advance by one, by two) are stacked first, in NeMo's order, for the same `torch.max`.
    v = torch.full((B, U_max + 2), padding_value, dtype=torch.float32, device=device)
    v[:, 2:4] = first_frame[:, :2]
    backpointers = torch.empty((T_max, B, U_max), dtype=torch.int8, device=device)
    backpointers[0] = -99  # never read: NeMo's initial value
    candidates = torch.empty((3, B, U_max), dtype=torch.float32, device=device)
    best = torch.empty((B, U_max), dtype=torch.float32, device=device)
    arg = torch.empty((B, U_max), dtype=torch.long, device=device)
    for t in range(1, T_max):
        candidates[0].copy_(v[:, 2:])
        candidates[1].copy_(v[:, 1:-1])
        torch.where(repeat, pad, v[:, :-2], out=candidates[2])
        candidates.add_(emit[t])
        torch.max(candidates, dim=0, out=(best, arg))
        v[:, 2:].copy_(best)
        backpointers[t].copy_(arg)

    # NeMo's start of the backtrack: the better of the last two states (the first on a tie), or
    # state 0 for an empty text (U_b == 1).
    final = v[:, 2:]
    last = (U_lens - 1).clamp(min=0)
    before_last = (U_lens - 2).clamp(min=0)
    v_last = final.gather(1, last.unsqueeze(1)).squeeze(1)
    v_before = final.gather(1, before_last.unsqueeze(1)).squeeze(1)
    current = torch.where(v_last > v_before, U_lens - 1, U_lens - 2)
    current = torch.where(U_lens == 1, torch.zeros_like(current), current)

    path = torch.empty((T_max, B), dtype=torch.long, device=device)
    path[T_max - 1] = current
    for t in range(T_max - 1, 0, -1):
        # Python's negative indexing in NeMo's loop wraps; remainder does the same here.
        step = backpointers[t].gather(1, torch.remainder(current, U_max).unsqueeze(1)).squeeze(1)
        current = current - step
        path[t - 1] = current
    path = path.T
    host = torch.cat((path, T_lens.unsqueeze(1)), dim=1).cpu()  # the one host sync
    rows = host.tolist()
    return [row[: row[-1]] for row in rows]


def ctc_log_probs(ctc_model, signal: torch.Tensor, signal_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log_probs (B, T, V), frames (B,)) of the aligner for a padded batch of 16 kHz audio
    (B, N), the calls of `EncDecCTCModel.forward` without its argmax.

    Sets the model to eval mode first: NeMo's `transcribe()` leaves the encoder and decoder of a
    model it ran in training mode on exit (`unfreeze(partial=True)`), so a forward after any
    `transcribe()` of the aligner (Canary's own timestamps path) would run with dropout on and
    update batch-norm statistics."""
    import torch

    ctc_model.eval()
    with torch.inference_mode():
        features, feature_lens = ctc_model.preprocessor(input_signal=signal, length=signal_lens)
        encoded, encoded_lens = ctc_model.encoder(audio_signal=features, length=feature_lens)
        log_probs = ctc_model.decoder(encoder_output=encoded)
    return log_probs, encoded_lens


WordPlan = tuple[str, int, int, int, tuple[str, ...], tuple[int, ...]]
"""(text, s_start, s_end, base, pieces, ids); s index y. In every branch of `get_utt_obj` a word's
tokens alternate with blanks, so its j-th token (pieces[j], ids[j]) sits at s = base + 2 j."""
SegmentPlan = tuple[str, int, int, tuple[WordPlan, ...]]
"""(text, s_start, s_end, its words)."""


@dataclass(frozen=True)
class TextPlan:
    """What Viterbi and the timestamp dicts read of NeMo's Utterance tree, as plain tuples:
    building the tree's dataclasses cost more than the tokenising did."""

    token_ids: tuple[int, ...]  # NeMo's token_ids_with_blanks
    segments: tuple[SegmentPlan, ...]


@dataclass(frozen=True)
class PreparedTexts:
    """The text half of NeMo's `get_batch_variables`, done before the frame counts are known
    (so it can run while the aligner's encoder is still on the GPU): each text's plan with no
    frame limit, and the token count NeMo checks against the frames."""

    texts: list[str]  # normalised as NeMo does: runs of whitespace to one space
    plans: list[TextPlan]
    check_tokens: list[int]
    blank: TextPlan  # what NeMo aligns instead of a text with more tokens than frames


@dataclass(frozen=True)
class AlignmentBatch:
    """What NeMo's `get_batch_variables` makes for Viterbi, without copying the log-probs:
    y with blanks (padded with V), lengths on the host, and each text's plan."""

    y: Any  # torch.Tensor (B, U_max) long, on the host
    T_lens: list[int]
    U_lens: list[int]
    plans: list[TextPlan]
    frame_s: float


def output_frame_s(ctc_model) -> float:
    """Seconds per CTC output frame, as `get_batch_variables` computes it (window stride x the
    encoder's subsampling factor)."""
    return ctc_model.cfg["preprocessor"]["window_stride"] * ctc_model.encoder.subsampling_factor


# ------------------------------------------------------------------------------------------
# Texts to plans: NeMo's get_utt_obj without its tree, each distinct word tokenised once
# ------------------------------------------------------------------------------------------

WORD_CACHE_SIZE = 16_384
"""Distinct words whose tokens are kept per tokenizer (emptied when full; a few MB at most):
speech repeats its words, so across batches nearly every word is found. 0 keeps none. Assumes,
as NeMo's own use does, that a tokenizer does not change once loaded."""
_word_caches: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _word_cache(tokenizer) -> dict[str, tuple[tuple[str, ...], tuple[int, ...]]]:
    """The tokenizer's word cache, dropped with the tokenizer (a fresh one if it cannot be)."""
    try:
        return _word_caches.setdefault(tokenizer, {})
    except TypeError:  # not weakly referenceable
        return {}


def _segments(text: str, separators: Sequence[str] | None) -> list[str]:
    """NeMo's segment split (get_utt_obj): after a separator character followed by a space
    (so "a.m." stays whole), stripped, empty ones dropped. Visits only the spaces."""
    if not separators:
        segments = [text.strip()]
    else:
        separators = [separators] if isinstance(separators, str) else separators
        segments = []
        last = -1
        space = text.find(" ", 1)
        while space != -1:
            if text[space - 1] in separators:
                segments.append(text[last + 1 : space].strip())
                last = space
            space = text.find(" ", space + 1)
        if last < len(text):
            segments.append(text[last + 1 :].strip())
    return [s for s in segments if s]


class _Subwords:
    """The subword-tokenizer branch of NeMo's `get_utt_obj`, built as plans. A text containing
    the tokenizer's unknown-word text takes NeMo's own function (its special case)."""

    def __init__(self, ctc_model) -> None:
        from nemo.collections.asr.parts.utils.aligner_utils import restore_token_case

        tokenizer = ctc_model.tokenizer
        self.tokenizer = tokenizer
        self.restore_token_case = restore_token_case
        self.blank: int = ctc_model.blank_id if hasattr(ctc_model, "blank_id") else tokenizer.vocab_size
        unk_id = tokenizer.unk_id if hasattr(tokenizer, "unk_id") else 0
        self.unk_word: str = tokenizer.ids_to_text([unk_id]).strip()
        tokenizer.ids_to_tokens([unk_id])  # NeMo reads it for every text: fail where it would
        self.cache = _word_cache(tokenizer)

    def handles(self, text: str) -> bool:
        return bool(self.unk_word) and self.unk_word not in text

    def word(self, word: str) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """(pieces, ids) of one word, as NeMo tokenises it (twice, once per kind)."""
        hit = self.cache.get(word)
        if hit is None:
            pieces = self.tokenizer.text_to_tokens(word)
            self.restore_token_case(word, pieces)  # unused here, but raises where NeMo's would
            hit = (tuple(map(sys.intern, pieces)), tuple(self.tokenizer.text_to_ids(word)))  # pieces shared
            if len(self.cache) >= WORD_CACHE_SIZE:
                self.cache.clear()
            if WORD_CACHE_SIZE:
                self.cache[word] = hit
        return hit

    def _segment_tokens(self, segment: str) -> int:
        """NeMo counts a segment's tokens apart from its words' (they may differ)."""
        hit = self.cache.get(segment)
        return len(hit[0]) if hit is not None else len(self.tokenizer.text_to_tokens(segment))

    def plan(self, text: str, separators: Sequence[str] | None, word_separator: str | None) -> tuple[TextPlan, int]:
        """(plan, the whole text's token count) of a normalised text, as get_utt_obj lays them
        out with no frame limit: s indices count y = blank, t1, blank, t2, ..., blank."""
        blank = self.blank
        if not text:
            return TextPlan((blank,), ()), 0
        n_tokens = len(self.tokenizer.text_to_ids(text))
        ids = [blank]
        segments = []
        segment_s = word_s = 1
        for segment in _segments(text, separators):
            segment_end = segment_s + 2 * self._segment_tokens(segment) - 2
            words = []
            for word in segment.split(word_separator) if word_separator not in (None, "") else [segment]:
                pieces, word_ids = self.word(word)
                word_end = word_s + 2 * len(pieces) - 2
                words.append((word, word_s, word_end, len(ids), pieces, word_ids))
                for token_id in word_ids[: len(pieces)]:  # NeMo zips the two
                    ids += (token_id, blank)
                word_s = word_end + 2
            segments.append((segment, segment_s, segment_end, tuple(words)))
            segment_s = segment_end + 2
        return TextPlan(tuple(ids), tuple(segments)), n_tokens


_BLANK_TEXT = "<b>"
"""NeMo's BLANK_TOKEN (aligner_utils): the text of its blank Token objects."""


def plan_from_utterance(utt) -> TextPlan:
    """The plan of a NeMo Utterance (from `get_utt_obj`): for the texts and models the fast
    path leaves to NeMo, and for tests."""
    from nemo.collections.asr.parts.utils.aligner_utils import Segment, Word

    segments = []
    for segment in utt.segments_and_tokens:
        if not isinstance(segment, Segment):
            continue
        words = tuple(_word_plan(word) for word in segment.words_and_tokens if isinstance(word, Word))
        segments.append((segment.text, segment.s_start, segment.s_end, words))
    return TextPlan(tuple(utt.token_ids_with_blanks), tuple(segments))


def _word_plan(word) -> WordPlan:
    """A NeMo Word as a plan, checking the layout the plan relies on (tokens at base + 2 j, blank
    Tokens between them)."""
    tokens, between = word.tokens[0::2], word.tokens[1::2]
    base = tokens[0].s_start if tokens else word.s_start
    if any(t.s_start != base + 2 * j or t.s_end != t.s_start for j, t in enumerate(tokens)) or any(
        t.text != _BLANK_TEXT for t in between
    ):
        raise ValueError(f"unexpected layout of NeMo's Word {word.text!r}")
    return word.text, word.s_start, word.s_end, base, tuple(t.text for t in tokens), tuple(t.token_id for t in tokens)


def _nemo_plan(ctc_model, text: str, separators, word_separator) -> tuple[TextPlan, int]:
    """NeMo's `get_utt_obj` with no frame limit, and the count it checks against T."""
    from nemo.collections.asr.parts.utils.aligner_utils import get_utt_obj

    utt = get_utt_obj(text=text, T=sys.maxsize, model=ctc_model, segment_separators=separators,
                      word_separator=word_separator)
    return plan_from_utterance(utt), _check_tokens(ctc_model, text)


def _check_tokens(ctc_model, text: str) -> int:
    """The count `get_utt_obj` compares with T (its only use of T): subword tokens of the whole
    text, or for a character model its characters plus the blanks repeats need."""
    if not text:
        return 0  # get_utt_obj returns before its check
    if hasattr(ctc_model, "tokenizer"):
        return len(ctc_model.tokenizer.text_to_ids(text))
    from nemo.collections.asr.parts.utils.aligner_utils import get_char_tokens

    tokens = get_char_tokens(text, ctc_model)
    return len(tokens) + sum(1 for a, b in zip(tokens, tokens[1:]) if a == b)


def _separator_list(separators: str | Sequence[str] | None) -> list[str] | None:
    """As NeMo reads them: one string is one separator (not its characters); none or empty: no
    segment splits."""
    if not separators:
        return None
    return [separators] if isinstance(separators, str) else list(separators)


def prepare_texts(
    ctc_model,
    texts: Sequence[str],
    segment_separators: Sequence[str] | None = DEFAULT_SEGMENT_SEPARATORS,
    word_separator: str | None = " ",
) -> PreparedTexts:
    """Each text (normalised as `get_batch_variables` does) as NeMo's `get_utt_obj` lays it out,
    with no frame limit yet; `fit_to_frames` applies it. Host work only: run it while the GPU is
    busy. Subword models take the fast path; character models take NeMo's function."""
    separators = _separator_list(segment_separators)
    normalised = [" ".join((t or "").split()) for t in texts]
    subwords = _Subwords(ctc_model) if hasattr(ctc_model, "tokenizer") else None
    planned = [
        subwords.plan(t, separators, word_separator) if subwords is not None and (not t or subwords.handles(t))
        else _nemo_plan(ctc_model, t, separators, word_separator)
        for t in normalised
    ]
    blank = subwords.plan("", separators, word_separator)[0] if subwords else _nemo_plan(ctc_model, "", None, None)[0]
    return PreparedTexts(texts=normalised, plans=[p for p, _ in planned], check_tokens=[n for _, n in planned],
                         blank=blank)


def fit_to_frames(ctc_model, prepared: PreparedTexts, T_lens: Sequence[int], vocab_size: int) -> AlignmentBatch:
    """NeMo's frame limit (a text with more tokens than frames gets the blank alone, and no
    timestamps), then y padded with V (`vocab_size`: the CTC output width, NeMo's
    `len(tokenizer.vocab) + 1`)."""
    import torch

    import numpy as np

    if len(T_lens) != len(prepared.plans):
        raise ValueError(f"{len(T_lens)} frame counts for {len(prepared.plans)} texts")
    plans = [prepared.blank if n > T else plan for plan, n, T in zip(prepared.plans, prepared.check_tokens, T_lens)]
    U_lens = [len(p.token_ids) for p in plans]
    y = np.full((len(plans), max(U_lens, default=1)), vocab_size, dtype=np.int64)
    for row, plan in zip(y, plans):
        row[: len(plan.token_ids)] = plan.token_ids
    return AlignmentBatch(y=torch.from_numpy(y), T_lens=list(T_lens), U_lens=U_lens, plans=plans,
                          frame_s=output_frame_s(ctc_model))


def prepare_batch(
    ctc_model,
    texts: Sequence[str],
    T_lens: Sequence[int],
    vocab_size: int,
    segment_separators: Sequence[str] | None = DEFAULT_SEGMENT_SEPARATORS,
    word_separator: str | None = " ",
) -> AlignmentBatch:
    """`prepare_texts` then `fit_to_frames`: the text half of NeMo's
    `get_batch_variables(..., has_hypotheses=True)`."""
    return fit_to_frames(ctc_model, prepare_texts(ctc_model, texts, segment_separators, word_separator),
                         T_lens, vocab_size)


def align_hypotheses(
    ctc_model,
    log_probs: torch.Tensor,
    lengths: torch.Tensor | Sequence[int],
    hypotheses: Sequence[Any],
    timestamp_type: Iterable[str] = DEFAULT_TIMESTAMP_TYPES,
    segment_separators: Sequence[str] | None = DEFAULT_SEGMENT_SEPARATORS,
    word_separator: str | None = " ",
    supported_punctuation: Iterable[str] = DEFAULT_SUPPORTED_PUNCTUATION,
) -> list[Any]:
    """Set `hyp.timestamp` on each of `hypotheses` (NeMo Hypothesis objects, `.text` read) as
    NeMo's `get_forced_aligned_timestamps_with_external_model` does, from CTC log-probs the
    caller already computed: (B, T_max, V) from `ctc_model.decoder` (any float dtype, on the
    device Viterbi should run on), `lengths` (B,) its valid frames (the encoder's lengths).
    Returns `hypotheses`, as NeMo's function does.

    Host syncs: `lengths.tolist()` when `lengths` is a device tensor, and Viterbi's one read-back.
    The text work runs before either, so it overlaps whatever the GPU is still doing: pass the
    encoder's lengths as they are (a `.cpu()` before the call would wait for the encoder first)."""
    import torch

    if len(hypotheses) != log_probs.shape[0]:
        raise ValueError(f"{len(hypotheses)} hypotheses for a batch of {log_probs.shape[0]} log-prob rows")
    types = _timestamp_types(timestamp_type)
    # As NeMo (which compares the argument with the strings): a "word" request does not split
    # segments, a "char" request splits neither.
    if timestamp_type == "char":
        segment_separators, word_separator = None, None
    elif timestamp_type == "word":
        segment_separators = None
    # Text work first: with CUDA log-probs still being computed, it overlaps the aligner's encoder.
    prepared = prepare_texts(ctc_model, [h.text for h in hypotheses], segment_separators, word_separator)
    T_lens = lengths.tolist() if isinstance(lengths, torch.Tensor) else [int(n) for n in lengths]
    batch = fit_to_frames(ctc_model, prepared, T_lens, log_probs.shape[-1])
    y = batch.y.pin_memory() if log_probs.is_cuda else batch.y
    alignments = viterbi_batch(
        log_probs, y.to(log_probs.device, non_blocking=True), torch.tensor(batch.T_lens), torch.tensor(batch.U_lens),
    )
    stamps = batch_timestamps(ctc_model, batch, alignments, types, supported_punctuation)
    for hyp, timestamp in zip(hypotheses, stamps):
        hyp.timestamp = timestamp
    return list(hypotheses)


def batch_timestamps(
    ctc_model,
    batch: AlignmentBatch,
    alignments: Sequence[Sequence[int]],
    types: Sequence[str] = DEFAULT_TIMESTAMP_TYPES,
    supported_punctuation: Iterable[str] = DEFAULT_SUPPORTED_PUNCTUATION,
) -> list[dict[str, list[dict]]]:
    """Each text's timestamp dicts from its Viterbi path: the host work left after the read-back."""
    frames = _FrameTimes(batch.frame_s, max((len(a) for a in alignments), default=0))
    char_text = _char_texts(ctc_model)
    punctuation = frozenset(supported_punctuation)
    return [timestamps_from_plan(plan, alignment, frames, types, punctuation, char_text)
            for plan, alignment in zip(batch.plans, alignments)]


def _timestamp_types(timestamp_type: str | Iterable[str]) -> list[str]:
    """NeMo's reading of `timestamp_type`: a name ('all' = segment, word, char) or a list, whose
    order is the order of the returned dict's keys."""
    if isinstance(timestamp_type, str):
        if timestamp_type not in (*_TIMESTAMP_TYPES, "all"):
            raise ValueError(f"timestamp_type {timestamp_type!r}: use one of segment, word, char, all")
        return list(_TIMESTAMP_TYPES) if timestamp_type == "all" else [timestamp_type]
    types = list(timestamp_type)
    unknown = [t for t in types if t not in _TIMESTAMP_TYPES]
    if unknown:
        raise ValueError(f"timestamp_type {unknown}: use segment, word or char")
    return types


def _offset(t_s: float, frame_s: float) -> int:
    return int(t_s / frame_s) if t_s != -1 else -1


Time = tuple[float, float, int]
"""(seconds, seconds rounded to 2 places, offset in frames) as NeMo writes a t_start or t_end."""
_NOT_VISITED: Time = (-1, round(-1, 2), -1)
"""NeMo's time of a state the path never visits: -1 (an int, so JSON keeps it -1)."""


class _FrameTimes:
    """Frame index k -> NeMo's (k * frame_s, round(k * frame_s, 2), int(k * frame_s / frame_s)),
    each computed once per batch instead of per word."""

    def __init__(self, frame_s: float, frames: int) -> None:
        self.frame_s = frame_s
        self.times: list[Time] = []
        for k in range(frames + 1):  # an end is the frame after the last one
            t = k * frame_s
            self.times.append((t, round(t, 2), _offset(t, frame_s)))

    def start(self, first: dict[int, int], s: int) -> Time:
        k = first.get(s)
        return _NOT_VISITED if k is None else self.times[k]

    def end(self, last: dict[int, int], s: int) -> Time:
        k = last.get(s)
        return _NOT_VISITED if k is None else self.times[k + 1]


def _entry(kind: str, text: str, start: Time, end: Time) -> dict:
    return {kind: text, "start_offset": start[2], "end_offset": end[2], "start": start[1], "end": end[1]}


def _char_texts(ctc_model):
    """Token id -> `tokenizer.ids_to_text([id])`, each id decoded once (the 'char' dicts)."""
    texts: dict[int, str] = {}

    def char_text(token_id: int) -> str:
        text = texts.get(token_id)
        if text is None:
            text = texts[token_id] = ctc_model.tokenizer.ids_to_text([token_id])
        return text

    return char_text


def _first_last(alignment: Sequence[int]) -> tuple[dict[int, int], dict[int, int]]:
    """The first and last frame of each state the path visits, read exactly as NeMo's
    `add_t_start_end_to_utt_obj` reads them (whatever the path)."""
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    prev = -1
    for t, s in enumerate(alignment):
        if s > prev:
            first[s] = t
            if prev >= 0:
                last[prev] = t - 1
        prev = s
    last[prev] = len(alignment) - 1
    return first, last


def timestamps_from_plan(plan: TextPlan, alignment: Sequence[int], frames: _FrameTimes, types: Sequence[str],
                         punctuation: frozenset[str], char_text=None) -> dict[str, list[dict]]:
    """The word / segment / char dicts of one aligned text: NeMo's `add_t_start_end_to_utt_obj`
    then the nested `process_timestamps` of NeMo 3.0's
    `get_forced_aligned_timestamps_with_external_model` (timestamp_utils.py, not importable on
    its own), on the plan instead of the Utterance tree. `frames` covers the path's length;
    `char_text` (token id -> text) is needed only for 'char'. A word's tokens are read only when
    it has punctuation or 'char' is asked for."""
    first, last = _first_last(alignment)
    out: dict[str, list[dict]] = {t: [] for t in types}
    segments, words, chars = out.get("segment"), out.get("word"), out.get("char")
    for segment_text, segment_s, segment_e, segment_words in plan.segments:
        segment_end = frames.end(last, segment_e)
        if segments is not None:
            segments.append(_entry("segment", segment_text, frames.start(first, segment_s), segment_end))
        for word_text, word_s, word_e, base, pieces, ids in segment_words:
            word_end = frames.end(last, word_e)
            if words is not None:
                words.append(_entry("word", word_text, frames.start(first, word_s), word_end))
            if chars is not None or not punctuation.isdisjoint(pieces):
                _tokens(first, last, frames, base, pieces, ids, punctuation, segment_end[0], word_end[0],
                        segments, words, chars, char_text)
    return out


def _tokens(first, last, frames: _FrameTimes, base, pieces, ids, punctuation, segment_end: float,
            word_end: float, segments, words, chars, char_text) -> None:
    """One word's tokens as `process_timestamps` reads them: a punctuation token takes the end of
    the token before it in its word, and a word or segment that ends on it ends there too (a CTC
    model often spreads a full stop over the silence after it)."""
    frame_s = frames.frame_s
    ends: list[float] = []  # each token's end so far, as NeMo's Token objects hold it
    for j, (piece, token_id) in enumerate(zip(pieces, ids)):
        if piece == _BLANK_TEXT:  # NeMo's dicts skip tokens by this text
            continue
        t_start, t_end = frames.start(first, base + 2 * j)[0], frames.end(last, base + 2 * j)[0]
        if piece in punctuation:
            previous_end = round(ends[-1], 2) if ends else round(t_start, 2)
            if segments is not None and segment_end == word_end:
                segments[-1]["end"] = previous_end
                segments[-1]["end_offset"] = _offset(previous_end, frame_s)
            if words is not None and word_end == t_end:
                words[-1]["end"] = previous_end
                words[-1]["end_offset"] = _offset(previous_end, frame_s)
            t_start = t_end = previous_end
        ends.append(t_end)
        if chars is not None:
            chars.append({
                "char": char_text(token_id), "token_id": token_id, "token": piece,
                "start_offset": _offset(t_start, frame_s), "end_offset": _offset(t_end, frame_s),
                "start": round(t_start, 2), "end": round(t_end, 2),
            })
