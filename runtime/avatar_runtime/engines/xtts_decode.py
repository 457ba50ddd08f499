"""XTTS-v2's GPT decode over a static KV cache, one row per chunk, graphed on a GPU.

coqui-tts decodes through transformers' ``generate``: a growing cache and eager
fp32 kernels, one launch per operation. On a GPU a step is launch-bound (a step
over 8 sequences costs about what a step over 1 costs), so what a chunk waits
for is the host issuing kernels, not the arithmetic. Here the cache is one
tensor per layer with a row per sequence, each row at its own position, so a
step has the same shapes every time: on CUDA it is captured once per batch
size (1, 2, 4, 8, ...) as a CUDA graph and replayed, which issues the whole
step, sampling included, in one launch. Because every row keeps its own
position, a chunk can take a free row between two steps while the others go
on speaking (``xtts_batching``), instead of waiting for a whole generation.

The numerics are those of coqui-tts's ``GPT2InferenceModel`` on transformers'
GPT-2: the same modules and weights (nothing is copied), the prefix (voice
latents, then the text with its own positions) followed by audio tokens
counted from the start-of-audio token, and the same logits processing
(repetition penalty over everything the row has seen, prefix placeholders
included, then temperature, top-k and top-p). A chunk is computed as it
would be alone: no row ever attends to another's positions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Batch sizes a graph is captured for; a step runs the smallest that holds every busy row.
BUCKETS = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Sampling:
    """Xtts.inference's settings (XTTS-v2's published inference defaults)."""

    do_sample: bool = True
    temperature: float = 0.75
    top_p: float = 0.85
    top_k: int = 50
    repetition_penalty: float = 10.0

    @classmethod
    def of(cls, settings: dict[str, Any]) -> Sampling:
        known = {k: settings[k] for k in cls.__dataclass_fields__ if k in settings}
        return cls(**known)


def scores(logits: Any, seen: Any, sampling: Sampling) -> Any:
    """Logits as transformers' processors leave them: the distribution a token is drawn from."""
    import torch

    penalty = sampling.repetition_penalty
    out = torch.where(seen, torch.where(logits < 0, logits * penalty, logits / penalty), logits)
    if not sampling.do_sample:
        return out
    out = out / sampling.temperature
    top_k = min(sampling.top_k, out.shape[-1])
    if top_k > 0:
        kth = torch.topk(out, top_k, dim=-1).values[..., -1:]
        out = out.masked_fill(out < kth, float("-inf"))
    if sampling.top_p < 1.0:
        ordered, order = torch.sort(out, descending=False)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative <= (1 - sampling.top_p)
        drop[..., -1:] = False
        out = out.masked_fill(drop.scatter(1, order, drop), float("-inf"))
    return out


def choose(logits: Any, seen: Any, sampling: Sampling) -> Any:
    """The next token per row: the argmax without sampling, else a draw from ``scores``.

    A draw is the exponential race (the argmax of p / E, E ~ Exp(1)), which is how
    torch's own multinomial draws one sample; it needs no host sync, so a graph can
    hold it.
    """
    processed = scores(logits, seen, sampling)
    if not sampling.do_sample:
        return processed.argmax(-1)
    probs = processed.softmax(dim=-1)
    race = probs.new_empty(probs.shape).exponential_(1)
    return (probs / race).argmax(-1)


class StaticDecoder:
    """Rows of a static KV cache over XTTS's GPT; ``prefill`` fills one, ``step`` advances all.

    Not thread-safe: one thread (the batcher's) drives it.
    """

    def __init__(
        self,
        gpt: Any,
        *,
        rows: int,
        sampling: Sampling,
        max_new_tokens: int,
        graphs: bool = True,
        compiled: bool = False,
    ) -> None:
        import torch

        self._torch = torch
        self.gpt = gpt
        inference = gpt.gpt_inference
        self._blocks = list(inference.transformer.h)
        self._ln_f = inference.transformer.ln_f
        self._head = inference.lm_head
        # coqui-tts's head is (final_norm, mel_head): the normed state between them is the
        # latent its vocoder takes, so each step keeps it (``latents``) and the latents
        # pass, a second run of the GPT over the whole chunk, is not needed.
        sequential = isinstance(self._head, torch.nn.Sequential) and len(self._head) == 2
        self.keeps_latents = sequential
        self._embedding = gpt.mel_embedding
        self._positions = gpt.mel_pos_embedding.emb
        weight = self._embedding.weight
        self.device = weight.device
        self.rows = rows
        self.sampling = sampling
        self.max_new_tokens = max_new_tokens
        act = type(self._blocks[0].mlp.act).__name__
        self._tanh_gelu = act in ("NewGELUActivation", "GELUTanh", "FastGELUActivation")
        attention = self._blocks[0].attn
        self._heads, self._head_dim = attention.num_heads, attention.head_dim
        self._width = attention.embed_dim
        self._scale = attention.scaling
        # Room for the longest prefix XTTS accepts (voice latents, [start] text [stop]), the
        # start-of-audio token and every new token.
        latents = getattr(getattr(gpt, "conditioning_perceiver", None), "latents", None)
        self._conditioning = int(latents.shape[0]) if latents is not None else 32
        self.capacity = self._conditioning + int(gpt.max_text_tokens) + 1 + max_new_tokens
        shape = (rows, self._heads, self.capacity, self._head_dim)
        with torch.inference_mode():
            self._keys = [
                torch.zeros(shape, dtype=weight.dtype, device=self.device) for _ in self._blocks
            ]
            self._values = [torch.zeros_like(k) for k in self._keys]
            vocabulary = self._head[-1].out_features
            self._seen = torch.zeros((rows, vocabulary), dtype=torch.bool, device=self.device)
            # The step's inputs and output, where a graph finds them on every replay.
            self._token = torch.zeros(rows, dtype=torch.long, device=self.device)
            self._slot = torch.zeros(rows, dtype=torch.long, device=self.device)
            self._audio_position = torch.zeros(rows, dtype=torch.long, device=self.device)
            self._next = torch.zeros(rows, dtype=torch.long, device=self.device)
            self._logits = torch.zeros((rows, vocabulary), dtype=weight.dtype, device=self.device)
            self._span = torch.arange(self.capacity, device=self.device)
            # A row's latents by audio position: the start token's, then each code fed.
            self._latents = torch.zeros(
                (rows if sequential else 0, max_new_tokens, self._width),
                dtype=weight.dtype,
                device=self.device,
            )
        self._graphs: dict[int, Any] = {}
        self.buckets = (*(b for b in BUCKETS if b < rows), rows)
        self._run_step: Any = self._step
        self.compiled = compiled and self.device.type == "cuda"
        if self.compiled:
            # For benchmarks: measured on an H200, a compiled step is no faster than the
            # graphed eager one (3.84 against 3.80 ms alone) and costs 100 s at load, so
            # the pod does not offer it (benchmarks/reports/gpu-xtts-decode.json).
            self._run_step = torch.compile(self._step, dynamic=True)
        if graphs and self.device.type == "cuda":
            try:
                self._capture()
            except Exception:  # a driver or torch that cannot compile or capture: eager steps
                log.exception(
                    "compiling or capturing XTTS-v2's decode step failed; it runs eagerly"
                )
                self._graphs.clear()
                self._run_step, self.compiled = self._step, False
                torch.cuda.synchronize()

    @property
    def graphed(self) -> bool:
        return bool(self._graphs)

    def fits(self, prefix_length: int) -> bool:
        return prefix_length + 1 + self.max_new_tokens <= self.capacity

    # -- one row ------------------------------------------------------------------------------

    def prefill(self, row: int, prefix: Any) -> int:
        """Run ``prefix`` (1, n, width), then the start-of-audio token, in ``row``: its first
        new token."""
        with self._torch.inference_mode():
            return self._prefill(row, prefix)

    def _prefill(self, row: int, prefix: Any) -> int:
        torch = self._torch
        gpt = self.gpt
        start = torch.tensor([[gpt.start_audio_token]], device=self.device)
        audio = self._embedding(start) + self._positions(torch.zeros_like(start))
        x = torch.cat([prefix.to(audio.dtype), audio], dim=1)
        length = x.shape[1]
        for layer, block in enumerate(self._blocks):
            q, k, v = self._qkv(block, x)
            self._keys[layer][row, :, :length] = k[0]
            self._values[layer][row, :, :length] = v[0]
            a = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, is_causal=True, scale=self._scale
            )
            x = self._after_attention(block, x, a)
        logits = self._scores_of(x[:, -1:], row=row)[:, 0]
        self._logits[row] = logits[0]
        # What transformers' repetition penalty sees first: the prefix placeholders (1) and
        # the start-of-audio token coqui-tts puts in front of the generation.
        self._seen[row] = False
        self._seen[row, 1] = True
        self._seen[row, gpt.start_audio_token] = True
        token = choose(logits, self._seen[row : row + 1], self.sampling)
        self._seen[row, token[0]] = True
        self._token[row] = token[0]
        self._slot[row] = length
        self._audio_position[row] = 1
        return int(token[0])

    # -- every row ----------------------------------------------------------------------------

    def step(self, busy: int) -> list[int]:
        """Advance rows 0..busy-1 one token (idle rows among them compute and are ignored)."""
        graph = self._graphs.get(next(b for b in self.buckets if b >= busy))
        with self._torch.inference_mode():
            if graph is not None:
                graph.replay()
            else:
                self._run_step(busy)
            return [int(t) for t in self._next[:busy].tolist()]

    def logits(self, row: int) -> Any:
        """The GPT's raw scores behind ``row``'s latest token (for checks against coqui-tts)."""
        return self._logits[row].clone()

    def latents(self, row: int, codes: int) -> Any:
        """(codes, width): the latents of ``row``'s chunk of ``codes`` tokens, a copy (the
        row may be reused at once), as coqui-tts's latents pass gives them; None where the
        GPT's head is not one this decoder can split (then that pass is run)."""
        if not self.keeps_latents:
            return None
        with self._torch.inference_mode():
            return self._latents[row, : min(codes, self.max_new_tokens)].clone()

    def _scores_of(self, x: Any, *, row: int | None = None) -> Any:
        """The head over ``x`` (rows, 1, width), keeping the normed state as those rows'
        latents at their audio positions (``row`` for a prefill, at position 0)."""
        hidden = self._ln_f(x)
        if not self.keeps_latents:
            return self._head(hidden)
        normed = self._head[0](hidden)
        if row is not None:
            self._latents[row, 0] = normed[0, 0]
        else:
            b = x.shape[0]
            at = self._audio_position[:b].clamp(max=self.max_new_tokens - 1)
            self._latents[:b].scatter_(1, at.view(b, 1, 1).expand(b, 1, self._width), normed)
        return self._head[1](normed)

    def _step(self, b: int) -> None:
        torch = self._torch
        slot = self._slot[:b]
        x = (self._embedding(self._token[:b]) + self._positions(self._audio_position[:b]))[:, None]
        # One additive mask for every layer: a row sees its own positions up to this one.
        mask = torch.zeros((b, 1, 1, self.capacity), dtype=x.dtype, device=self.device)
        mask.masked_fill_((self._span[None, :] > slot[:, None])[:, None, None, :], float("-inf"))
        index = slot.view(b, 1, 1, 1).expand(b, self._heads, 1, self._head_dim)
        for layer, block in enumerate(self._blocks):
            q, k, v = self._qkv(block, x)
            keys, values = self._keys[layer][:b], self._values[layer][:b]
            keys.scatter_(2, index, k)
            values.scatter_(2, index, v)
            a = torch.nn.functional.scaled_dot_product_attention(
                q, keys, values, attn_mask=mask, scale=self._scale
            )
            x = self._after_attention(block, x, a)
        logits = self._scores_of(x)[:, 0]
        self._logits[:b].copy_(logits)
        token = choose(logits, self._seen[:b], self.sampling)
        self._seen[:b].scatter_(1, token[:, None], True)
        self._next[:b].copy_(token)
        self._token[:b].copy_(token)
        # Rows that have finished run on until reused; keep their writes inside the cache.
        slot.add_(1).clamp_(max=self.capacity - 1)
        self._audio_position[:b].add_(1).clamp_(max=self._positions.num_embeddings - 1)

    def _qkv(self, block: Any, x: Any) -> tuple[Any, Any, Any]:
        rows, length, _ = x.shape
        q, k, v = block.attn.c_attn(block.ln_1(x)).split(self._width, dim=2)
        shape = (rows, length, self._heads, self._head_dim)
        return (
            q.view(shape).transpose(1, 2),
            k.view(shape).transpose(1, 2),
            v.view(shape).transpose(1, 2),
        )

    def _after_attention(self, block: Any, x: Any, a: Any) -> Any:
        rows, length, _ = x.shape
        x = x + block.attn.c_proj(a.transpose(1, 2).reshape(rows, length, self._width))
        h = block.ln_2(x)
        if self._tanh_gelu:  # GPT-2's gelu_new is the tanh GELU, in one kernel instead of seven
            mlp = block.mlp
            return x + mlp.c_proj(self._torch.nn.functional.gelu(mlp.c_fc(h), approximate="tanh"))
        return x + block.mlp(h)

    # -- graphs -------------------------------------------------------------------------------

    def _capture(self) -> None:
        """One graph per bucket, sharing one memory pool; the cache is left as it was found."""
        torch = self._torch
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.inference_mode(), torch.cuda.stream(side):
            for _ in range(2):  # warm-up outside capture: lazy inits, cuBLAS workspaces
                for bucket in self.buckets:
                    self._run_step(bucket)
        torch.cuda.current_stream().wait_stream(side)
        pool = None
        with torch.inference_mode():
            for bucket in sorted(self.buckets, reverse=True):
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    self._run_step(bucket)
                pool = graph.pool()
                self._graphs[bucket] = graph
            self._slot.zero_()
            self._audio_position.zero_()
            self._seen.zero_()
        torch.cuda.synchronize()
