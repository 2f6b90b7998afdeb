"""Word confidence: how sure the model was of each word it wrote, with one meaning for every family.

A token's probability is the one the model gave that token at the step that emitted it, given
the audio and the tokens before it (no boosting, no beam: the model's own distribution). Our
greedy AED decoder keeps it while decoding (asr.models.aed_decoder: free); otherwise it is read
by scoring the emitted tokens once more in one batched pass, so it is the same whatever decoder
chose them (NeMo's generator, NeMo's beam search with phrase boosting):

- attention encoder-decoders (Canary): the decoder run once over prompt + tokens (teacher
  forcing), each token's log-probability read off the next-token distribution;
- transducers (Parakeet TDT, RNN-T): the prediction network run once over the tokens, the joint
  evaluated only at each token's (frame, position);
- CTC: each token's best frame in the run of frames that emitted it.

A word's confidence is the product of its tokens' probabilities (the probability the model gave
the whole word), between 0 and 1. Words are the tokenizer's: a SentencePiece piece starting
with '▁' (or a space token, for character models) starts a new word, as in the text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_ROWS_PER_HEAD = 16
"""Rows per slice when the AED's vocabulary head runs over a batch (bounds the (rows, steps,
vocabulary) log-prob tensor: 16 x 128 x 16,384 floats is 128 MB)."""


def token_ids(hyp) -> list[int]:
    seq = getattr(hyp, "y_sequence", None)
    if seq is None:
        return []
    return [int(t) for t in (seq.tolist() if hasattr(seq, "tolist") else seq)]


def kept_token_logprobs(hyps) -> list[np.ndarray] | None:
    """Per hypothesis, its tokens' log-probabilities as the decoder kept them while decoding
    (`hyp.token_confidence`, one probability per token of `y_sequence`); None unless every
    hypothesis has them (then they are scored with a second pass)."""
    out = []
    for hyp in hyps:
        probs = getattr(hyp, "token_confidence", None)
        if probs is None:
            return None
        probs = np.asarray(probs.float().cpu() if hasattr(probs, "cpu") else probs, dtype=np.float32).reshape(-1)
        if len(probs) != len(token_ids(hyp)):
            return None
        out.append(np.log(np.maximum(probs, np.finfo(np.float32).tiny)))
    return out


def aed_token_logprobs(model, states, mask, prompt, hyps) -> list[np.ndarray]:
    """Per hypothesis, the log-probability of each of its tokens (`hyp.y_sequence`, prompt and
    end-of-text removed) under the decoder given the prompt, the tokens before it and the audio
    (`states`, `mask`: the encoder output the hypotheses were decoded from; `prompt` (B, P))."""
    import torch

    ids = [token_ids(h) for h in hyps]
    lengths = [len(i) for i in ids]
    out = [np.zeros(0, dtype=np.float32) for _ in hyps]
    if not any(lengths):
        return out
    P, L = prompt.shape[1], max(lengths)
    device = states.device
    pad = int(getattr(model.tokenizer, "pad", 0) or 0)
    rows = torch.full((len(ids), P + L), pad, dtype=torch.long)
    for b, seq in enumerate(ids):
        rows[b, P: P + len(seq)] = torch.tensor(seq, dtype=torch.long)
    rows = rows.to(device)
    rows[:, :P] = prompt
    steps = torch.arange(P + L, device=device)
    dec_mask = (steps[None, :] < (P + torch.tensor(lengths, device=device))[:, None]).to(states.dtype)
    hidden = model.transf_decoder(input_ids=rows, decoder_mask=dec_mask, encoder_embeddings=states,
                                  encoder_mask=mask)
    targets = rows[:, P:]  # token j is predicted at position P - 1 + j
    picked = []
    for lo in range(0, len(ids), _ROWS_PER_HEAD):
        h = hidden[lo: lo + _ROWS_PER_HEAD, P - 1: P - 1 + L]
        logp = model.log_softmax(hidden_states=h).float()
        picked.append(logp.gather(-1, targets[lo: lo + _ROWS_PER_HEAD, :, None])[..., 0])
    values = torch.cat(picked).cpu().numpy()
    return [values[b, :n].astype(np.float32) for b, n in enumerate(lengths)]


def transducer_token_logprobs(model, encoded, frames: Sequence[Sequence[int]], hyps) -> list[np.ndarray]:
    """Per hypothesis, each token's log-probability from the joint at the frame that emitted it
    (`frames`: one encoder frame index per token) and the prediction network's state after the
    tokens before it. `encoded`: (B, D, T), the encoder output the hypotheses were decoded from.
    TDT's duration outputs are left out: the distribution is over tokens and blank."""
    import torch

    ids = [token_ids(h) for h in hyps]
    lengths = [len(i) for i in ids]
    out = [np.zeros(0, dtype=np.float32) for _ in hyps]
    if not any(lengths):
        return out
    B, U = len(ids), max(lengths)
    device = encoded.device
    blank = int(model.decoder.blank_idx)
    y = torch.full((B, U), blank, dtype=torch.long)
    t = torch.zeros((B, U), dtype=torch.long)
    for b, (seq, f) in enumerate(zip(ids, frames)):
        if len(f) != len(seq):
            raise ValueError(f"{len(f)} frame indices for {len(seq)} tokens")
        y[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        t[b, : len(seq)] = torch.tensor([int(x) for x in f], dtype=torch.long)
    y, t = y.to(device), t.clamp(0, encoded.shape[2] - 1).to(device)
    g, _ = model.decoder.predict(y, state=None, add_sos=True, batch_size=B)  # (B, U + 1, H): after u tokens
    f = encoded.transpose(1, 2).gather(1, t[:, :, None].expand(-1, -1, encoded.shape[1]))  # (B, U, D)
    g = g[:, :U].to(f.dtype)
    logits = model.joint.joint(f.reshape(B * U, 1, -1), g.reshape(B * U, 1, -1))  # (B*U, 1, 1, V')
    labels = logits.reshape(B, U, -1)[..., : logits.shape[-1] - int(getattr(model.joint, "num_extra_outputs", 0))]
    logp = torch.log_softmax(labels.float(), dim=-1).gather(-1, y[:, :, None])[..., 0].cpu().numpy()
    return [logp[b, :n].astype(np.float32) for b, n in enumerate(lengths)]


def ctc_token_logprobs(log_probs, hyps, blank: int) -> tuple[list[list[int]], list[np.ndarray]]:
    """(token ids, their log-probabilities) per greedy CTC hypothesis, whose `y_sequence` is NeMo's
    label per frame (boosted or not): runs of one label collapse to one token, blanks emit nothing,
    and a token's log-probability is that of its label at the best frame of its run.
    `log_probs`: (B, T, V), the decoder output the hypotheses were decoded from."""
    import torch

    rows = [token_ids(h) for h in hyps]
    T = log_probs.shape[1]
    labels = torch.full((len(rows), T), blank, dtype=torch.long)
    for b, seq in enumerate(rows):
        seq = seq[:T]
        labels[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
    picked = log_probs.float().gather(-1, labels.to(log_probs.device)[:, :, None])[..., 0].cpu().numpy()
    labels = labels.numpy()
    ids, out = [], []
    for b, seq in enumerate(rows):
        n = min(len(seq), T)
        lab, lp = labels[b, :n], picked[b, :n]
        if n == 0:
            ids.append([])
            out.append(np.zeros(0, dtype=np.float32))
            continue
        starts = np.flatnonzero(np.r_[True, lab[1:] != lab[:-1]])
        run_best = np.maximum.reduceat(lp, starts)
        keep = lab[starts] != blank
        ids.append([int(t) for t in lab[starts][keep]])
        out.append(run_best[keep].astype(np.float32))
    return ids, out


def word_confidences(tokenizer, ids: Sequence[int], logprobs: Sequence[float]) -> list[float]:
    """One confidence per word of the tokens' text: the product of its tokens' probabilities.
    A token whose piece starts with '▁' (SentencePiece) or is a space (character models) starts a
    word; a lone '▁' joins the word after it."""
    if len(ids) != len(logprobs):
        raise ValueError(f"{len(logprobs)} log-probabilities for {len(ids)} tokens")
    if not ids:
        return []
    pieces = tokenizer.ids_to_tokens([int(i) for i in ids]) if hasattr(tokenizer, "ids_to_tokens") else None
    words: list[float] = []
    current: float | None = None
    pending = 0.0  # a lone '▁' or a space: its probability goes to the next word
    for k, lp in enumerate(logprobs):
        piece = str(pieces[k]) if pieces is not None else ""
        if piece in ("▁", " "):
            if current is not None:
                words.append(current)
                current = None
            pending += float(lp)
            continue
        if piece.startswith("▁") and current is not None:
            words.append(current)
            current = None
        current = (current or 0.0) + float(lp) + pending
        pending = 0.0
    if current is not None:
        words.append(current)
    return [float(min(1.0, math.exp(w))) for w in words]


def attach(texts: Sequence[str], confidences: Sequence[float]) -> list[float | None]:
    """A confidence for each of `texts` (the words a timestamp source gives, in order): the
    tokenizer's words and these are the same words when their counts match (the normal case);
    otherwise each word takes the confidence of the text as a whole (the mean), so no word is
    left without one."""
    if len(texts) == len(confidences):
        return list(confidences)
    whole = mean(confidences)
    return [whole for _ in texts]


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the known values (None if there are none)."""
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None
