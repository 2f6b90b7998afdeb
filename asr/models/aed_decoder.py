"""Greedy decoding for attention encoder-decoder models (Canary) that is not bound by kernel
launches: a preallocated key/value cache, the cross-attention keys and values projected once per
batch, end-of-sequence checked on the device, and on CUDA each token step replayed from a CUDA
graph.

NeMo 3.0's `GreedySequenceGenerator` re-runs every decoder layer's self-attention projections
over the whole prefix and the cross-attention projections over the whole encoder output at every
step, launches ~100 kernels per step from Python and syncs the host once per step to test for
end-of-sequence (measured on an H200: 56,634 launches and 32,949 syncs per batch of 128). NeMo
has CUDA-graph decoders for transducers and CTC only.

`GreedyDecoder` is a drop-in for that generator (same call, same return value), installed as
`model.decoding.decoding.greedy_search`, so NeMo's own hypothesis packing, detokenisation and
timestamp handling stay in use. The arithmetic is NeMo's (pre-LN blocks, queries and keys each
divided by the fourth root of the head size, -10000 additive masks), so on the same dtype the
tokens are NeMo's tokens (tested against NeMo's greedy `transcribe()` on the tiny model).

Each step also keeps the probability the model gave the token it chose (one log-sum-exp over the
vocabulary, on the device), returned where NeMo's generator returns its step confidences, so
NeMo's packing puts it in `hypothesis.token_confidence`: word confidence without a second pass.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

log = logging.getLogger(__name__)

NEG_INF = -10000.0
"""NeMo's additive mask value (nemo.collections.common.parts.transformer_utils.NEG_INF)."""
CHECK_EVERY = 8
"""Steps between host checks for 'every sequence has ended' (one sync each)."""
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 48, 64, 96, 128, 160, 192, 256, 384, 512)
"""Batch sizes CUDA graphs are captured for; a batch is padded up to the next one."""
FRAME_BUCKET = 32
"""Encoder lengths are padded up to a multiple of this for graph capture (masked)."""


def supported(generator) -> str | None:
    """None when `generator` (NeMo's GreedySequenceGenerator) can be replaced; else why not."""
    decoder = getattr(generator, "decoder", None)
    layers = getattr(decoder, "layers", None)
    if layers is None or not len(layers):
        return "no decoder layers"
    if not all(getattr(layer, "pre_ln", False) for layer in layers):
        return "post-LN decoder blocks"
    if any(getattr(layer, "is_adapter_available", lambda: False)() for layer in layers):
        return "decoder adapters"
    if getattr(generator, "temperature", None) is not None or getattr(generator, "n_samples", 1) != 1:
        return "sampling"
    if getattr(generator, "preserve_step_confidence", False) or getattr(generator, "return_xattn_scores", False):
        return "per-step confidence or attention scores"
    return None


@dataclass(frozen=True)
class _Shape:
    batch: int
    frames: int
    prompt: int
    steps: int
    probs: bool = True

    @property
    def positions(self) -> int:
        return self.prompt + self.steps


class GreedyDecoder:
    """Replaces NeMo's GreedySequenceGenerator (see the module docstring). `graphs`: capture the
    token step in CUDA graphs (CUDA only)."""

    def __init__(self, generator, graphs: bool = True):
        import torch

        why = supported(generator)
        if why:
            raise ValueError(f"the fast greedy decoder does not handle {why}")
        self.generator = generator
        self.embedding = generator.embedding
        self.decoder = generator.decoder
        self.classifier = generator.classifier
        self.pad, self.bos, self.eos = generator.pad, generator.bos, generator.eos
        self.max_seq_length = generator.max_seq_length
        self.max_delta_len = generator.max_delta_len
        first = self.decoder.layers[0].first_sub_layer
        self.heads = first.num_attention_heads
        self.head_size = first.attn_head_size
        self.scale = math.sqrt(math.sqrt(self.head_size))
        self.layers = len(self.decoder.layers)
        self.param = next(self.decoder.parameters())
        self.graphs = graphs and self.param.is_cuda
        self._graphs: dict[_Shape, object] = {}
        self._small: dict[_Shape, dict] = {}
        self._pool = None
        self._workspace = None
        self._torch = torch
        self.steps_run = 0
        """Decoder steps run so far (all batches), for benchmarks."""
        self.keep_probs = True
        """Keep each token's probability (NeMo's step confidences); off only to measure its cost."""

    # -- NeMo's generator interface -------------------------------------------------------------

    def __call__(self, decoder_input_ids=None, encoder_hidden_states=None, encoder_input_mask=None,
                 return_beam_scores=False):
        torch = self._torch
        if return_beam_scores or decoder_input_ids is None or encoder_hidden_states is None:
            return self.generator(decoder_input_ids, encoder_hidden_states, encoder_input_mask, return_beam_scores)
        with torch.inference_mode():
            tokens, probs = self.decode_with_probs(encoder_hidden_states, encoder_input_mask, decoder_input_ids)
        if not self.keep_probs:
            return tokens, None, None, None
        # NeMo's layout for step confidences: one per column of `tokens`, 1 for the prompt
        prompt = torch.ones(decoder_input_ids.shape, dtype=probs.dtype, device=probs.device)
        return tokens, None, torch.cat([prompt, probs], dim=1), None

    # -- decoding ---------------------------------------------------------------------------------

    def max_steps(self, frames: int, prompt: int) -> int:
        """NeMo's cap: min(max_sequence_length, encoder frames + max_delta) - prompt length."""
        limit = min(self.max_seq_length, frames + self.max_delta_len) if self.max_delta_len >= 0 else self.max_seq_length
        return max(0, limit - prompt)

    def decode(self, enc, enc_mask, prompt):
        """(B, prompt + generated) token ids, as NeMo's generator returns them: each row stops at
        <eos> and is padded with <pad> after it; the columns end where the last row ended."""
        return self.decode_with_probs(enc, enc_mask, prompt)[0]

    def decode_with_probs(self, enc, enc_mask, prompt):
        """`decode`'s token ids, and (B, generated) float32: the probability the model gave each
        generated token (padding after <eos> included, as NeMo's step confidences do; zeros when
        `keep_probs` is off)."""
        torch = self._torch
        batch, frames = enc.shape[0], enc.shape[1]
        prompt_len = prompt.shape[1]
        steps = self.max_steps(frames, prompt_len)
        if steps == 0:
            return prompt, torch.zeros((prompt.shape[0], 0), dtype=torch.float32, device=prompt.device)
        if self.graphs:
            shape = _Shape(_bucket(batch), -(-frames // FRAME_BUCKET) * FRAME_BUCKET, prompt_len, 0)
            shape = _Shape(shape.batch, shape.frames, prompt_len, self.max_steps(shape.frames, prompt_len),
                           self.keep_probs)
        else:
            shape = _Shape(batch, frames, prompt_len, steps, self.keep_probs)
        state = self._state(shape)
        state.load(enc, enc_mask, prompt, steps)
        self._prompt_pass(state)  # emits the first token
        runner = self._graph(shape, state) if self.graphs else None
        emitted = 1
        while emitted < steps and not bool(state.finished[:batch].all()):
            n = min(CHECK_EVERY, steps - emitted)
            for _ in range(n):
                if runner is not None:
                    runner.replay()
                else:
                    self._step(state)
            emitted += n
        self.steps_run += emitted
        generated = state.out[:batch, :emitted]
        logp = state.logp[:batch, :emitted]
        if bool(state.finished[:batch].all()):  # NeMo stops at the step where the last row ended
            end = int(state.ended_at[:batch].max()) + 1
            generated, logp = generated[:, :end], logp[:, :end]
        return torch.cat([prompt, generated.to(prompt.dtype)], dim=1), logp.exp()

    def _state(self, shape: _Shape) -> "_State":
        torch = self._torch
        need = _State.numel(shape, self.layers, self.heads, self.head_size)
        if self._workspace is None or self._workspace.numel() < need:
            if self._workspace is not None:
                log.info("decoder workspace grows to %.2f GB; CUDA graphs recaptured", need * 2 / 1e9)
            self._graphs.clear()
            self._small.clear()
            self._pool = None  # the graphs that kept the old pool alive are gone
            self._workspace = None
            self._workspace = torch.empty(need, dtype=self.param.dtype, device=self.param.device)
        return _State(self, shape, self._workspace)

    def _graph(self, shape: _Shape, state: "_State"):
        torch = self._torch
        graph = self._graphs.get(shape)
        if graph is not None:
            return graph
        saved = state.snapshot()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # warm-up before capture, as torch's documentation asks
                self._step(state)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            self._step(state)
        if self._pool is None:
            self._pool = graph.pool()
        state.restore(saved)
        self._graphs[shape] = graph
        log.info("captured a decoder step graph for batch %d, %d frames, %d positions",
                 shape.batch, shape.frames, shape.positions)
        return graph

    def _prompt_pass(self, state: "_State") -> None:
        """All prompt tokens at once (as NeMo's first step does); leaves the first generated
        token in `state.token`."""
        torch = self._torch
        prompt = state.prompt
        positions = torch.arange(prompt.shape[1], device=prompt.device)
        logits = self._forward(state, prompt, positions)
        self._emit(state, logits[:, -1])

    def _step(self, state: "_State") -> None:
        """One token for every row, reading and writing only `state`'s tensors (graph-safe)."""
        logits = self._forward(state, state.token.unsqueeze(1), state.pos)
        self._emit(state, logits[:, -1])

    def _emit(self, state: "_State", logits) -> None:
        torch = self._torch
        nxt = torch.argmax(logits, dim=-1)
        where = (state.rows, state.step.expand_as(state.rows))
        if state.shape.probs:  # the chosen token's log-probability: its logit minus the log-sum-exp
            logits = logits.float()
            chosen = logits.gather(-1, nxt[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
            torch.index_put_(state.logp, where, chosen)
        nxt = torch.where(state.finished, torch.full_like(nxt, self.pad), nxt)
        torch.index_put_(state.out, where, nxt.to(state.out.dtype))
        newly = (nxt == self.eos) & ~state.finished
        state.ended_at.copy_(torch.where(newly, state.step.expand_as(state.ended_at), state.ended_at))
        state.finished |= nxt == self.eos
        state.token.copy_(nxt)
        state.pos += 1
        state.step += 1

    def _forward(self, state: "_State", ids, positions):
        """Embed `ids` (B, n) at `positions` (n,), run every layer with the caches, return logits
        (B, n, V). Writes the new positions' keys and values into the cache."""
        torch = self._torch
        emb = self.embedding
        batch, n = ids.shape
        x = emb.token_embedding(ids) + emb.position_embedding(positions.view(1, n).expand(batch, n))
        x = emb.layer_norm(x)
        # key j is visible to query i when j <= position of i
        self_mask = (state.key_index.view(1, -1) > positions.view(-1, 1)).to(x.dtype) * NEG_INF  # (n, T)
        for layer_index, layer in enumerate(self.decoder.layers):
            k_cache, v_cache = state.self_k[layer_index], state.self_v[layer_index]
            attn = layer.first_sub_layer
            residual = x
            h = layer.layer_norm_1(x)
            q = self._heads(attn.query_net(h)) / self.scale
            k = self._heads(attn.key_net(h)) / self.scale
            v = self._heads(attn.value_net(h))
            k_cache.index_copy_(2, positions, k)
            v_cache.index_copy_(2, positions, v)
            x = self._attend(attn, q, k_cache, v_cache, self_mask) + residual
            cross = layer.second_sub_layer
            residual = x
            h = layer.layer_norm_2(x)
            q = self._heads(cross.query_net(h)) / self.scale
            x = self._attend(cross, q, state.cross_k[layer_index], state.cross_v[layer_index], state.cross_mask) + residual
            residual = x
            x = layer.third_sub_layer(layer.layer_norm_3(x)) + residual
        if self.decoder.final_layer_norm is not None:
            x = self.decoder.final_layer_norm(x)
        mlp = self.classifier.mlp
        saved, mlp.log_softmax = mlp.log_softmax, False
        try:
            return mlp(x)
        finally:
            mlp.log_softmax = saved

    def _heads(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.head_size).transpose(1, 2)

    def _attend(self, attn, q, k, v, mask):
        torch = self._torch
        scores = torch.matmul(q, k.transpose(-1, -2)) + mask
        probs = torch.softmax(scores, dim=-1)
        context = torch.matmul(probs, v)
        b, _, n, _ = context.shape
        context = context.transpose(1, 2).reshape(b, n, self.heads * self.head_size)
        return attn.out_projection(context)

    def cross_kv(self, enc):
        """Per layer, the cross-attention keys (divided by the scale, as NeMo does) and values."""
        out = []
        for layer in self.decoder.layers:
            cross = layer.second_sub_layer
            out.append((self._heads(cross.key_net(enc)) / self.scale, self._heads(cross.value_net(enc))))
        return out


class _State:
    """Every tensor a token step reads or writes, as views into one workspace (so CUDA graphs of
    different shapes share the memory; only one runs at a time)."""

    @staticmethod
    def numel(shape: _Shape, layers: int, heads: int, head_size: int) -> int:
        per = heads * head_size
        return (2 * layers * shape.batch * shape.positions * per  # self-attention cache
                + 2 * layers * shape.batch * shape.frames * per  # cross-attention keys/values
                + shape.batch * shape.frames)  # cross mask

    def __init__(self, dec: GreedyDecoder, shape: _Shape, workspace):
        torch = dec._torch
        self.dec = dec
        self.shape = shape
        b, f, t, h, d, layers = shape.batch, shape.frames, shape.positions, dec.heads, dec.head_size, dec.layers
        offset = 0

        def take(*dims):
            nonlocal offset
            n = math.prod(dims)
            view = workspace[offset: offset + n].view(*dims)
            offset += n
            return view

        self.self_k, self.self_v = take(layers, b, h, t, d), take(layers, b, h, t, d)
        self.cross_k, self.cross_v = take(layers, b, h, f, d), take(layers, b, h, f, d)
        self.cross_mask = take(b, 1, 1, f)
        device = workspace.device
        # small state: allocated per shape, kept with the graph
        small = dec._small.get(shape)
        if small is None:
            small = {
                "token": torch.zeros(b, dtype=torch.long, device=device),
                "pos": torch.zeros(1, dtype=torch.long, device=device),
                "step": torch.zeros(1, dtype=torch.long, device=device),
                "finished": torch.zeros(b, dtype=torch.bool, device=device),
                "ended_at": torch.zeros(b, dtype=torch.long, device=device),
                "out": torch.zeros(b, max(1, shape.steps), dtype=torch.long, device=device),
                "logp": torch.zeros(b, max(1, shape.steps), dtype=torch.float32, device=device),
                "rows": torch.arange(b, device=device),
                "key_index": torch.arange(t, device=device),
            }
            dec._small[shape] = small
        self.__dict__.update(small)
        self.prompt = None

    def load(self, enc, enc_mask, prompt, steps: int) -> None:
        """Fill the state for one batch (padding rows and frames stay masked)."""
        torch = self.dec._torch
        b, f = enc.shape[0], enc.shape[1]
        shape = self.shape
        self.self_k.zero_()
        self.self_v.zero_()
        self.cross_mask.fill_(NEG_INF)
        self.cross_mask[:b, 0, 0, :f] = (1.0 - enc_mask.to(self.cross_mask.dtype)) * NEG_INF
        self.cross_k.zero_()
        self.cross_v.zero_()
        for layer, (k, v) in enumerate(self.dec.cross_kv(enc.to(self.cross_k.dtype))):
            self.cross_k[layer, :b, :, :f] = k
            self.cross_v[layer, :b, :, :f] = v
        full = prompt
        if shape.batch > b:
            full = torch.cat([prompt, prompt[:1].expand(shape.batch - b, -1)], dim=0)
        self.prompt = full
        self.token.zero_()
        self.pos.fill_(prompt.shape[1] - 1)  # the prompt pass advances it to the first generated token
        self.step.zero_()
        self.finished.zero_()
        self.finished[b:] = True  # padding rows
        self.ended_at.fill_(steps)
        self.out.fill_(self.dec.pad)
        self.logp.zero_()

    def snapshot(self):
        return {k: getattr(self, k).clone() for k in ("token", "pos", "step", "finished", "ended_at", "out", "logp")} | {
            "self_k": self.self_k.clone(), "self_v": self.self_v.clone()}

    def restore(self, saved) -> None:
        for k, v in saved.items():
            getattr(self, k).copy_(v)


def _bucket(batch: int) -> int:
    for b in BATCH_BUCKETS:
        if b >= batch:
            return b
    return -(-batch // BATCH_BUCKETS[-1]) * BATCH_BUCKETS[-1]
