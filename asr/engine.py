"""The model: load Canary through NeMo, transcribe or translate batches of in-memory chunks.

This is the only module that imports torch and NeMo (lazily, inside functions), so everything
else runs and is tested without them.

Canary-1B-v2 facts used here (NeMo 3.0 source):
- `EncDecMultiTaskModel.transcribe` takes a list of 16 kHz float32 arrays; one prompt per call.
- Word and segment timestamps come from an auxiliary CTC model stored inside the .nemo
  (`timestamps_asr_model_*`): NeMo force-aligns the decoded text against the audio. Without such
  a model, Canary variants that predict timestamp tokens are asked for them in the prompt.
- NeMo pads arrays shorter than 1 s on both sides, which would shift timestamps; we pad on the
  right ourselves so chunk time 0 stays the first sample.
- The decoder's length cap is `encoder frames (12.5 per second) + max_generation_delta` per batch,
  so a hypothesis that loops is cut in proportion to the chunk's duration.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelLoadError
from .types import SAMPLE_RATE, ChunkResult, Request, TimedText

log = logging.getLogger(__name__)

DEFAULT_MODEL = "nvidia/canary-1b-v2"
MIN_INPUT_S = 1.0
"""NeMo pads shorter inputs; we pad on the right instead (see module docstring)."""
DEFAULT_MAX_GENERATION_DELTA = 50
"""Decoder steps allowed beyond the encoder length (80 ms frames): ~4 s of slack per chunk."""


@dataclass
class EngineInfo:
    name: str
    device: str
    dtype: str
    batch_size: int
    has_timestamp_model: bool
    load_s: float = 0.0
    extra: dict = field(default_factory=dict)


MAX_CUDA_BATCH = 128
"""The Open ASR Leaderboard measures Canary-1B-v2 at batch 128; larger batches are untested."""
CHUNK_BYTES_ESTIMATE = 96 * 2**20
"""Activation memory of one 20 s chunk in bf16, with the aligner: the 8x subsampling's first
convolution alone holds 256 x 1000 x 64 values (33 MB); rounded up for the rest."""


def default_batch_size(device: str) -> int:
    """Chunks per model call: $ASR_BATCH_SIZE if set; on CUDA as many as half the free memory
    holds, up to MAX_CUDA_BATCH; on CPU 4 (more only adds latency there)."""
    env = os.environ.get("ASR_BATCH_SIZE")
    if env:
        try:
            value = int(env)
        except ValueError as e:
            raise ValueError(f"ASR_BATCH_SIZE={env!r} is not an integer") from e
        if value < 1:
            raise ValueError(f"ASR_BATCH_SIZE must be at least 1, not {value}")
        return value
    if device.startswith("cuda"):
        import torch

        free_bytes, _ = torch.cuda.mem_get_info(torch.device(device))
        return max(1, min(MAX_CUDA_BATCH, int(free_bytes * 0.5 // CHUNK_BYTES_ESTIMATE)))
    return 4


class Engine:
    """A loaded Canary model. `transcribe` is the only entry point the pipeline needs."""

    def __init__(self, model, name: str, device: str, batch_size: int | None = None, load_s: float = 0.0):
        import torch

        self.model = model
        self.device = device
        self.dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        self.batch_size = batch_size or default_batch_size(device)
        self.info = EngineInfo(
            name=name,
            device=device,
            dtype=str(self.dtype).replace("torch.", ""),
            batch_size=self.batch_size,
            has_timestamp_model=getattr(model, "timestamps_asr_model", None) is not None,
            load_s=load_s,
        )

    @property
    def name(self) -> str:
        return self.info.name

    def release(self) -> None:
        """Return cached GPU memory after a failed or cancelled request (no-op on CPU)."""
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def transcribe(self, audios: Sequence[np.ndarray], request: Request) -> list[ChunkResult]:
        """One batch of chunks (16 kHz mono float32) with one prompt. Results keep input order."""
        import torch
        from nemo.collections.asr.models.aed_multitask_models import MultiTaskTranscriptionConfig

        if not audios:
            return []
        min_n = int(MIN_INPUT_S * SAMPLE_RATE)
        batch = [a if a.size >= min_n else np.pad(a, (0, min_n - a.size)) for a in audios]
        aligned = request.timestamps and self.info.has_timestamp_model
        prompt = {
            "source_lang": request.source_lang,
            "target_lang": request.target_lang,
            "pnc": "yes" if request.pnc else "no",
            # With the auxiliary aligner the decoder is not asked for timestamp tokens.
            "timestamp": "yes" if request.timestamps and not aligned else "no",
        }
        config = MultiTaskTranscriptionConfig(
            batch_size=len(batch),
            return_hypotheses=True,
            num_workers=0,
            verbose=False,
            prompt=prompt,
            enable_chunking=False,  # our chunks are already <= 20 s; NeMo's merge would join them
        )
        autocast = (
            torch.autocast("cuda", dtype=self.dtype)
            if self.device.startswith("cuda") else contextlib.nullcontext()
        )
        try:
            with autocast, torch.inference_mode():
                hyps = self.model.transcribe(batch, override_config=config, timestamps=request.timestamps or None)
        finally:
            clear_cross_attention_cache(self.model)  # do not hold a batch's encoder output
        return [_result(h, request.timestamps) for h in hyps]


def _result(hyp, timestamps: bool) -> ChunkResult:
    text = (hyp.text if isinstance(hyp.text, str) else str(hyp.text or "")).strip()
    if not timestamps or not isinstance(hyp.timestamp, dict):
        return ChunkResult(text=text)

    def timed(entries, key: str) -> tuple[TimedText, ...]:
        out = []
        for e in entries or []:
            t = str(e.get(key, "")).strip()
            if not t:
                continue
            start, end = float(e.get("start", 0.0)), float(e.get("end", 0.0))
            out.append(TimedText(start_s=start, end_s=max(start, end), text=t))
        return tuple(out)

    return ChunkResult(
        text=text,
        words=timed(hyp.timestamp.get("word"), "word"),
        segments=timed(hyp.timestamp.get("segment"), "segment"),
    )


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------

def pick_device(requested: str | None = None) -> str:
    import torch

    want = (requested or os.environ.get("ASR_DEVICE") or "auto").lower()
    if want == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if want.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"ASR_DEVICE={want} was asked for but no CUDA device is available")
    return want


def load(name_or_path: str | None = None, device: str | None = None, batch_size: int | None = None) -> Engine:
    """Load a Canary model by Hugging Face name or .nemo path (default: $ASR_MODEL, else
    nvidia/canary-1b-v2) through NeMo's own loaders. Every failure names ASR_MODEL."""
    name = name_or_path or os.environ.get("ASR_MODEL") or DEFAULT_MODEL
    start = time.perf_counter()
    _silence_known_noise()
    try:
        import torch
        from nemo.collections.asr.models import ASRModel, EncDecMultiTaskModel
    except ImportError as e:
        raise ModelLoadError(f"NeMo is not installed ({e}); install nemo_toolkit[asr] to load ASR_MODEL={name}") from e
    dev = pick_device(device)
    local = Path(name).expanduser()
    try:
        with _quiet_nemo():
            if local.suffix == ".nemo" or local.exists():
                if not local.is_file():
                    raise ModelLoadError(f"ASR_MODEL={name}: no such .nemo file")
                model = ASRModel.restore_from(str(local), map_location=torch.device(dev))
            else:
                model = ASRModel.from_pretrained(name, map_location=torch.device(dev))
    except ModelLoadError:
        raise
    except Exception as e:  # network, missing cache, corrupt archive: all mean "no model"
        raise ModelLoadError(
            f"could not load the model ASR_MODEL={name}: {type(e).__name__}: {e}. "
            f"Set ASR_MODEL to a local .nemo file, or make the Hugging Face model reachable "
            f"(network access or a pre-filled HF_HOME cache)"
        ) from e
    if not isinstance(model, EncDecMultiTaskModel):
        raise ModelLoadError(
            f"ASR_MODEL={name} is a {type(model).__name__}; this service needs a Canary "
            f"multi-task model (EncDecMultiTaskModel) such as nvidia/canary-1b-v2"
        )
    model.eval()
    _set_generation_cap(model, DEFAULT_MAX_GENERATION_DELTA)
    if os.environ.get("ASR_XATTN_CACHE", "1") != "0":
        install_cross_attention_cache(model)
    engine = Engine(model, name=name, device=dev, batch_size=batch_size, load_s=time.perf_counter() - start)
    log.info("loaded %s on %s (%s) in %.1f s; timestamp aligner: %s", name, dev, engine.info.dtype,
             engine.info.load_s, "yes" if engine.info.has_timestamp_model else "no")
    return engine


def _set_generation_cap(model, delta: int) -> None:
    """Cap decoding at encoder length + delta steps, for greedy and beam alike."""
    from omegaconf import OmegaConf, open_dict

    cfg = OmegaConf.create(OmegaConf.to_container(model.cfg.decoding, resolve=True)) if model.cfg.get("decoding") else None
    if cfg is None:
        return
    with open_dict(cfg):
        for strategy in ("greedy", "beam"):
            if strategy in cfg and cfg[strategy] is not None:
                cfg[strategy]["max_generation_delta"] = delta
    with _quiet_nemo():
        model.change_decoding_strategy(cfg)


class _ProjectionCache:
    """Wraps one nn.Linear's forward: returns the previous output when called again with the very
    same input tensor (same object; for ordinary tensors also the same version counter, which
    in-place writes bump; tensors made under inference_mode have none, and the generators never
    write to the encoder output)."""

    def __init__(self, linear):
        self.forward = linear.forward  # the bound original
        self.clear()

    def clear(self) -> None:
        self.input = None
        self.version = None
        self.output = None

    @staticmethod
    def _version(x):
        return None if x.is_inference() else x._version

    def __call__(self, x):
        if x is self.input and self._version(x) == self.version:
            return self.output
        out = self.forward(x)
        self.input, self.version, self.output = x, self._version(x), out
        return out


def _cross_projections(model):
    """The key and value projections of every decoder layer's cross-attention."""
    decoder = getattr(getattr(model, "transf_decoder", None), "decoder", None)
    for layer in getattr(decoder, "layers", []):
        cross = getattr(layer, "second_sub_layer", None)
        for name in ("key_net", "value_net"):
            linear = getattr(cross, name, None)
            if linear is not None:
                yield linear


def install_cross_attention_cache(model) -> int:
    """Make the decoder project the encoder output to cross-attention keys and values once per
    batch instead of once per generated token.

    NeMo 3.0's autoregressive generators pass the same encoder-output tensor to every decoding
    step, and each decoder layer's cross-attention re-applies key_net and value_net to all of it:
    2 x frames x 1024^2 multiply-adds per layer per token, about four times the rest of a decoder
    step for a 20 s chunk. The result of a projection of an unchanged tensor is the same, so it
    is cached, keyed on the tensor's identity and version; outputs are bit-identical (tested).
    Returns the number of projections wrapped."""
    wrapped = 0
    for linear in _cross_projections(model):
        if not isinstance(linear.forward, _ProjectionCache):
            linear.forward = _ProjectionCache(linear)  # instance attribute: weights and state_dict untouched
            wrapped += 1
    return wrapped


def clear_cross_attention_cache(model) -> None:
    for linear in _cross_projections(model):
        if isinstance(linear.forward, _ProjectionCache):
            linear.forward.clear()


def remove_cross_attention_cache(model) -> None:
    """Back to NeMo's own projections (for A/B measurements and tests)."""
    for linear in _cross_projections(model):
        if isinstance(linear.forward, _ProjectionCache):
            del linear.forward


class _KnownNoise(logging.Filter):
    """Drops log records NeMo's dependencies emit on every load that look alarming but are not:
    hydra's 'Error getting class ... get_nemo_transformer' (NeMo then calls the function, as
    intended) and the telemetry library announcing it is off."""

    PATTERNS = ("get_nemo_transformer: Located non-class", "OneLogger: Setting error_handling_strategy",
                "No exporters were provided")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p in message for p in self.PATTERNS)


def _silence_known_noise() -> None:
    noise = _KnownNoise()
    for name in ("hydra.utils", "nv_one_logger.api.config",
                 "nv_one_logger.training_telemetry.api.training_telemetry_provider"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _KnownNoise) for f in logger.filters):
            logger.addFilter(noise)


@contextlib.contextmanager
def _quiet_nemo():
    """NeMo logs every config it touches at INFO; keep our logs readable."""
    _silence_known_noise()
    try:
        from nemo.utils import logging as nemo_logging
    except ImportError:
        yield
        return
    level = nemo_logging.getEffectiveLevel()
    nemo_logging.setLevel(logging.WARNING)
    try:
        yield
    finally:
        nemo_logging.setLevel(level)


# --------------------------------------------------------------------------------------------
# A tiny model with Canary-1B-v2's structure, for tests and CI (no weights can be downloaded).
# --------------------------------------------------------------------------------------------

TINY_PHRASE = "Hello world! The quick brown fox."
"""What the tiny model says for every chunk (see build_tiny_model)."""

_CANARY2_SPECIALS = [
    # Canary's special-token order (ids 1..): the ids NeMo and the real checkpoint agree on.
    "<|nospeech|>", "<pad>", "<|endoftext|>", "<|startoftranscript|>", "<|pnc|>", "<|nopnc|>",
    "<|startofcontext|>", "<|itn|>", "<|noitn|>", "<|timestamp|>", "<|notimestamp|>", "<|diarize|>",
    "<|nodiarize|>", "<|spkchange|>", "<|audioseparator|>", "<|emo:undefined|>", "<|emo:neutral|>",
    "<|emo:happy|>", "<|emo:sad|>", "<|emo:angry|>", "<|unklang|>",
]


@dataclass(frozen=True)
class CanaryDims:
    """The sizes that distinguish Canary-1B-v2 from our tiny test model (everything else is shared)."""

    d_model: int
    encoder_layers: int
    encoder_heads: int
    subsampling_channels: int
    decoder_layers: int
    decoder_heads: int
    vocab_size: int
    aligner_layers: int


TINY_DIMS = CanaryDims(64, 2, 4, 32, 2, 4, 1300, 1)
CANARY_1B_V2_DIMS = CanaryDims(1024, 32, 8, 256, 8, 8, 16384, 24)
"""From Canary-1B-v2's published configuration: 32-layer, 1024-wide FastConformer (8x
depthwise-striding subsampling, 256 channels, kernel 9), 8-layer pre-LN decoder with 8 heads and
4096 inner size, a 16,384-token vocabulary, 128 mel bins, and a 24-layer CTC aligner."""


def build_canary_like(dims: CanaryDims, work_dir: str | os.PathLike, seed: int = 0):
    """(main model, aligner) with Canary-1B-v2's structure at the given sizes, random weights,
    built with NeMo's own classes. The tokenizer (trained here on synthetic text) holds Canary's
    special tokens, all 25 language tokens and the <|0|>..<|899|> timestamp tokens."""
    import sentencepiece
    import torch
    from omegaconf import OmegaConf

    from nemo.collections.asr.models import EncDecCTCModelBPE, EncDecMultiTaskModel
    from nemo.collections.common.tokenizers.sentencepiece_tokenizer import create_spt_model

    from .languages import CODES

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    work = Path(work_dir)
    tok_dir = work / "tokenizer"
    corpus = work / "corpus.txt"
    if dims.vocab_size <= 2000:
        words = (
            "Hello world! The quick brown fox. the lazy dog jumps over speech recognition "
            "der die das und ist nicht la le les et est pas el los y es no"
        ).split()
    else:  # enough distinct text for a large vocabulary
        syllables = [a + b for a in "bcdfghjklmnprstvz" for b in "aeiouy"]
        words = ["".join(rng.choice(syllables, size=int(rng.integers(1, 4)))) for _ in range(40_000)]
    with open(corpus, "w") as f:
        f.write(TINY_PHRASE + "\n")
        for _ in range(2000 if dims.vocab_size <= 2000 else 20_000):
            f.write(" ".join(rng.choice(words, size=10 if dims.vocab_size <= 2000 else 12)) + "\n")
    sentencepiece.set_min_log_level(2)  # its trainer prints every symbol otherwise
    specials = (
        _CANARY2_SPECIALS + [f"<|{c}|>" for c in CODES] + [f"<|{i}|>" for i in range(900)]
        + [f"<|spk{i}|>" for i in range(16)]
    )
    create_spt_model(
        str(corpus), vocab_size=dims.vocab_size, sample_size=-1, do_lower_case=False, tokenizer_type="bpe",
        output_dir=str(tok_dir), user_defined_symbols=specials,
    )
    d = dims.d_model
    preprocessor = {  # the real model's front end
        "_target_": "nemo.collections.asr.modules.AudioToMelSpectrogramPreprocessor",
        "sample_rate": SAMPLE_RATE, "normalize": "per_feature", "window_size": 0.025,
        "window_stride": 0.01, "window": "hann", "features": 128, "n_fft": 512, "log": True,
        "frame_splicing": 1, "dither": 1.0e-05, "pad_to": 0, "pad_value": 0.0,
    }

    def encoder(n_layers: int, use_bias: bool = True) -> dict:  # FastConformer as in Canary-1B-v2
        return {
            "_target_": "nemo.collections.asr.modules.ConformerEncoder",
            "feat_in": 128, "feat_out": -1, "n_layers": n_layers, "d_model": d,
            "subsampling": "dw_striding", "subsampling_factor": 8,
            "subsampling_conv_channels": dims.subsampling_channels,
            "causal_downsampling": False, "ff_expansion_factor": 4, "self_attention_model": "rel_pos",
            "n_heads": dims.encoder_heads, "att_context_size": [-1, -1], "xscaling": False,
            "untie_biases": True, "pos_emb_max_len": 5000, "conv_kernel_size": 9,
            "conv_norm_type": "batch_norm", "use_bias": use_bias,
            "dropout": 0.0, "dropout_pre_encoder": 0.0, "dropout_emb": 0.0, "dropout_att": 0.0,
        }

    tokenizer = {
        "dir": str(tok_dir), "type": "bpe",
        "custom_tokenizer": {"_target_": "nemo.collections.common.tokenizers.canary_tokenizer.CanaryBPETokenizer"},
    }
    aed_cfg = {
        "sample_rate": SAMPLE_RATE,
        "prompt_format": "canary2",
        "prompt_defaults": [
            {"role": "user", "slots": {
                "decodercontext": "", "source_lang": "<|en|>", "target_lang": "<|en|>",
                "emotion": "<|emo:undefined|>", "pnc": "<|pnc|>", "itn": "<|noitn|>",
                "diarize": "<|nodiarize|>", "timestamp": "<|notimestamp|>"}},
            {"role": "user_partial", "slots": {"decodercontext": ""}},
        ],
        "model_defaults": {"asr_enc_hidden": d, "lm_enc_hidden": d, "lm_dec_hidden": d},
        "tokenizer": tokenizer,
        "preprocessor": preprocessor,
        "encoder": encoder(dims.encoder_layers),
        "transf_encoder": {
            "_target_": "nemo.collections.asr.modules.transformer.transformer_encoders.TransformerEncoder",
            "num_layers": 0, "hidden_size": d, "inner_size": 4 * d, "num_attention_heads": dims.decoder_heads,
            "mask_future": False, "pre_ln": True, "pre_ln_final_layer_norm": True,
        },
        "transf_decoder": {
            "_target_": "nemo.collections.asr.modules.transformer.get_nemo_transformer",
            "model_name": None, "pretrained": False, "encoder": None, "pre_ln_final_layer_norm": True,
            "config_dict": {
                "max_sequence_length": 1024, "num_token_types": 0, "embedding_dropout": 0.0,
                "learn_positional_encodings": False, "hidden_size": d, "inner_size": 4 * d,
                "num_layers": dims.decoder_layers, "num_attention_heads": dims.decoder_heads,
                "ffn_dropout": 0.0, "attn_score_dropout": 0.0, "attn_layer_dropout": 0.0,
                "hidden_act": "relu", "pre_ln": True, "vocab_size": None,
            },
        },
        "head": {
            "_target_": "nemo.collections.asr.parts.submodules.token_classifier.TokenClassifier",
            "num_layers": 1, "activation": "relu", "log_softmax": True, "hidden_size": d,
            "num_classes": None, "dropout": 0.0, "use_transformer_init": True,
        },
        "decoding": {"strategy": "beam", "return_best_hypothesis": True,
                     "beam": {"beam_size": 1, "len_pen": 0.0, "max_generation_delta": DEFAULT_MAX_GENERATION_DELTA}},
        "loss": {"_target_": "nemo.collections.common.losses.smoothed_cross_entropy.SmoothedCrossEntropyLoss",
                 "label_smoothing": 0.0, "pad_id": None},
    }
    with _quiet_nemo():
        aed = EncDecMultiTaskModel(cfg=OmegaConf.create(aed_cfg))
        ctc = EncDecCTCModelBPE(cfg=OmegaConf.create({
            "sample_rate": SAMPLE_RATE,
            "tokenizer": {"dir": str(tok_dir), "type": "bpe"},
            "preprocessor": preprocessor,
            "encoder": encoder(dims.aligner_layers, use_bias=False),
            "decoder": {"_target_": "nemo.collections.asr.modules.ConvASRDecoder", "feat_in": d,
                        "num_classes": -1, "vocabulary": []},
        }))
    return aed, ctc


def build_tiny_model(out_path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a small .nemo with Canary-1B-v2's structure (see build_canary_like): the aligner is
    packed into the archive under the names NeMo's restore looks for, so it loads through
    ASRModel.restore_from and `transcribe(..., timestamps=True)` force-aligns like the real one.

    Weights are random, except the decoder's: they are set so that it says TINY_PHRASE and stops,
    whatever it hears. That keeps decoding fast and gives the text, spacing and forced-alignment
    paths real words to carry (a random decoder repeats one token up to the length cap).
    """
    import tarfile
    import tempfile

    out = Path(out_path).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, _quiet_nemo():
        tmp = Path(tmp)
        aed, ctc = build_canary_like(TINY_DIMS, tmp, seed)
        _teach_phrase(aed, TINY_PHRASE)
        main_nemo, ctc_nemo = tmp / "main.nemo", tmp / "ctc.nemo"
        aed.save_to(str(main_nemo))
        ctc.save_to(str(ctc_nemo))
        # NeMo has no API to store the aligner: add its files under the names it restores from.
        partial = out.with_suffix(".part")
        with tarfile.open(main_nemo) as main_tar, tarfile.open(ctc_nemo) as ctc_tar, \
                tarfile.open(partial, "w") as dst:
            names = set()
            for m in main_tar.getmembers():
                names.add(os.path.basename(m.name))
                dst.addfile(m, main_tar.extractfile(m) if m.isfile() else None)
            for m in ctc_tar.getmembers():
                if not m.isfile():
                    continue
                base = os.path.basename(m.name)
                base = {"model_config.yaml": "timestamps_asr_model_config.yaml",
                        "model_weights.ckpt": "timestamps_asr_model_weights.ckpt"}.get(base, base)
                if base in names:
                    continue
                info = tarfile.TarInfo("./" + base)
                info.size = m.size
                dst.addfile(info, ctc_tar.extractfile(m))
        partial.replace(out)
    return out


def _teach_phrase(model, phrase: str) -> None:
    """Set the decoder so that, from the prompt's last token, it emits `phrase` then
    <|endoftext|>. Self- and cross-attention outputs are zeroed, so each layer passes the token
    embedding through; the first layer's feed-forward maps token i to token i+1 of the chain
    (one ReLU unit per token), and the tied head reads the result off the embedding."""
    import torch

    tok = model.tokenizer
    chain = [tok.token_to_id("<|nodiarize|>")] + list(tok.text_to_ids(phrase)) + [tok.eos]
    if len(set(chain)) != len(chain):
        raise ValueError(f"the tiny phrase must tokenize to distinct tokens, got {tok.ids_to_tokens(chain)}")
    dec = model.transf_decoder
    emb = dec.embedding.token_embedding.weight  # tied with the output head
    d = emb.shape[1]
    g = torch.Generator().manual_seed(1)
    basis = torch.randn(d, len(chain), generator=g)
    basis -= basis.mean(dim=0, keepdim=True)  # zero-mean columns pass LayerNorm unchanged in direction
    basis, _ = torch.linalg.qr(basis)
    u = basis.T  # one orthonormal, zero-mean direction per chain token
    scale = np.sqrt(d)  # LayerNorm output of a unit zero-mean vector
    with torch.no_grad():
        for k, t in enumerate(chain):
            emb[t] = 100.0 * u[k]
        layers = dec.decoder.layers
        for layer in layers:
            for attn in (layer.first_sub_layer, layer.second_sub_layer):
                attn.out_projection.weight.zero_()
                attn.out_projection.bias.zero_()
            layer.third_sub_layer.dense_out.weight.zero_()
            layer.third_sub_layer.dense_out.bias.zero_()
        ff = layers[0].third_sub_layer
        ff.dense_in.weight.zero_()
        ff.dense_in.bias.fill_(-0.5 * scale)
        for k in range(len(chain) - 1):
            ff.dense_in.weight[k] = u[k]  # fires (~scale/2) only for chain token k
            ff.dense_out.weight[:, k] = (3.0 * scale * u[k + 1] - scale * u[k]) / (0.5 * scale)
