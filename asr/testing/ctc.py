"""A tiny CTC model (NeMo `EncDecCTCModelBPE`, the class of stt_hi_conformer_ctc_medium), for tests
and trying the service without weights (`python -m asr tiny-model OUT.nemo --kind ctc`).

FastConformer encoder, SentencePiece BPE tokenizer, ConvASRDecoder head and NeMo's greedy CTC
decoding with word and segment offsets. Like the Hindi checkpoint it declares one language, in its
config (`languages: [hi]`, the place a fine-tuned checkpoint can carry it too), so it refuses
other languages. It says Hindi numbers: word k at k - 0.5 s (see asr.testing.timed_words), so
`expected_words(duration_s)` predicts the text of any chunk.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..models.runtime import quiet_nemo
from ..types import SAMPLE_RATE
from . import _common, timed_words

LANGUAGES = ("hi",)
WORDS = ("एक", "दो", "तीन", "चार", "पांच", "छह", "सात", "आठ", "नौ", "दस",
         "ग्यारह", "बारह", "तेरह", "चौदह", "पंद्रह", "सोलह", "सत्रह", "अठारह", "उन्नीस", "बीस")
D_MODEL = 64


def expected_words(duration_s: float) -> list[str]:
    """The words the tiny CTC model says for a chunk of `duration_s` seconds."""
    return timed_words.words_for(duration_s, WORDS)


def build(out_path: str | os.PathLike, seed: int = 0) -> Path:
    import torch
    from omegaconf import OmegaConf

    from nemo.collections.asr.models import EncDecCTCModelBPE

    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp, quiet_nemo():
        tok_dir = _common.train_tokenizer(Path(tmp), list(WORDS), vocab_size=128, seed=seed)
        model = EncDecCTCModelBPE(cfg=OmegaConf.create({
            "sample_rate": SAMPLE_RATE,
            "languages": list(LANGUAGES),
            "tokenizer": {"dir": str(tok_dir), "type": "bpe"},
            "preprocessor": _common.preprocessor(),
            "encoder": _common.encoder(D_MODEL, n_layers=2),
            "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": D_MODEL,
                        "num_classes": -1, "vocabulary": []},
            "decoding": {"strategy": "greedy_batch", "preserve_alignments": False},
        }))
        model.eval()
        ids, weights, biases = timed_words.word_detectors(model, WORDS)
        conv = model.decoder.decoder_layers[0]  # Conv1d(d, vocab + 1, 1); blank is the last class
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.fill_(-50.0)
            conv.bias[-1] = 0.0
            for i, t in enumerate(ids):
                conv.weight[t, :, 0] = weights[i]
                conv.bias[t] = biases[i]
        partial = out.with_suffix(".part")
        model.save_to(str(partial))
        partial.replace(out)
    return out
