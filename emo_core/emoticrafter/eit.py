"""EmotiCrafter's Emotion Injection Transformer (EIT) in plain PyTorch.

Maps SDXL prompt embeddings E (B, L, 2048) plus raw valence/arousal on [-3, 3] to emotional prompt embeddings of the
same shape. The forward follows the published code, not the paper where the two differ:

- every block: ``n = ln_1(h); h = n + attn(n, n)``, then arousal cross-attention (``ln_a``, ``attn_a``), then valence
  (``ln_v``, ``attn_v``), each adding to the *normalised* tensor; only the MLP is a standard pre-LN residual;
- attention queries come from the first third of the published ``c_attn`` (stored here alone, as ``c_q``); keys and
  values come from ``c_z``; no mask of any kind; learned positions ``wpe``; tanh-GELU;
- ``out = E + ln_xl_feature(ln_f(h) @ W_out)``.

Parameter names and layouts follow the published state dict (GPT-2 ``Conv1D`` weights stored (in, out)), so the
published checkpoint loads after three edits: strip ``module.``, drop ``wte``, keep the query third of ``c_attn``
(``emo_core.emoticrafter.eit_io`` does this).

Two execution paths give the same function: the plain path (``fast=False``) is a readable reference with manual
softmax attention; the fast path uses ``scaled_dot_product_attention`` for self-attention, runs each 16-token
cross-attention either with SDPA or folded into two small per-context matrices (chosen per call by the shape and
device rule of ``emo_core.emoticrafter.eit_paths``), shares prompt-only work across a V-A grid and computes the A/V
features once per distinct value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .eit_paths import use_folded

CONV1D_INIT_STD = 0.02  # GPT-2 initializer_range, also the std of every Conv1D weight at construction


@dataclass
class EITConfig:
    """Sizes of an EIT. Defaults are the published model (GPT-2 small layout, 16 condition tokens per stream)."""

    n_layer: int = 12
    n_embd: int = 768
    n_head: int = 12
    n_tokens: int = 16  # condition tokens produced from one arousal or valence value
    feature_dim: int = 2048  # SDXL prompt embedding width (CLIP-L 768 + bigG 1280)
    n_positions: int = 1024
    va_hidden: int = 256  # hidden width of the scalar -> tokens MLPs a_f and v_f
    dropout: float = 0.0  # GPT-2's embd/attn/resid dropout; only active in train mode (published training: 0.1)

    def __post_init__(self):
        for name in ("n_layer", "n_embd", "n_head", "n_tokens", "feature_dim", "n_positions", "va_hidden"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"EITConfig.{name} must be a positive integer, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


class Conv1D(nn.Module):
    """GPT-2's affine layer: weight stored (in, out), y = x @ W + b. Kept so state dicts match the published one."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.empty(n_out))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=CONV1D_INIT_STD)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(*x.shape[:-1], -1)


def gelu_new(x: torch.Tensor) -> torch.Tensor:
    """transformers' NewGELU written out, as the published code evaluates it (reference path)."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


@dataclass
class FoldedCrossAttention:
    """One cross-attention with its 16 context tokens folded into the weights, per distinct context.

    scores(x) = x @ qk + qk_bias  (heads and tokens flattened to H*T columns, 1/sqrt(d) included);
    output    = softmax_per_head(scores) @ vp + c_proj.bias.
    """

    qk: torch.Tensor  # (U, n_embd, H*T)
    qk_bias: torch.Tensor  # (U, 1, H*T)
    vp: torch.Tensor  # (U, H*T, n_embd)


class ConditionedAttention(nn.Module):
    """The published ``Cond_Attention``: query from x (``c_q``), key and value from z (``c_z``), no mask."""

    def __init__(self, config: EITConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.c_q = Conv1D(config.n_embd, config.n_embd)
        self.c_z = Conv1D(config.n_embd, 2 * config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:  # (B, T, H*d) -> (B, H, T, d)
        return t.view(t.shape[0], t.shape[1], self.n_head, self.head_dim).transpose(1, 2)

    def _merge(self, t: torch.Tensor) -> torch.Tensor:  # (B, H, T, d) -> (B, T, H*d)
        return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], -1)

    def _attn_dropout_p(self) -> float:
        return self.dropout if self.training else 0.0

    def forward_plain(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Reference: the published op order (less the discarded K/V thirds of c_attn)."""
        q = self._heads(self.c_q(x))
        k, v = (self._heads(t) for t in self.c_z(z).split(q.shape[1] * q.shape[3], dim=-1))
        weights = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        weights = F.dropout(weights.softmax(dim=-1), self._attn_dropout_p(), self.training)
        return self.resid_dropout(self.c_proj(self._merge(torch.matmul(weights, v))))

    def forward_sdpa(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        q = self._heads(self.c_q(x))
        k, v = (self._heads(t) for t in self.c_z(z).split(q.shape[1] * q.shape[3], dim=-1))
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self._attn_dropout_p())
        return self.resid_dropout(self.c_proj(self._merge(out)))

    def fold(self, context: torch.Tensor) -> FoldedCrossAttention:
        """Precompute the per-context matrices for ``forward_folded``; context is (U, T, n_embd), T small (16).

        Per head h: scores = (x Wq_h + bq_h) K_hᵀ / sqrt(d) = x (Wq_h K_hᵀ / sqrt(d)) + bq_h K_hᵀ / sqrt(d), and
        probs V_h Wp_h = probs (V_h Wp_h): ~2·n·H·T MACs per token instead of ~2·n². One product per head over
        all U·T context tokens (no weight copied per context)."""
        n_ctx, n_tok, width = context.shape
        heads, dim = self.n_head, self.head_dim
        k, v = self.c_z(context).split(width, dim=-1)
        k_t = (k.reshape(n_ctx * n_tok, heads, dim) / math.sqrt(dim)).permute(1, 2, 0)  # (H, d, U*T)
        w_q = self.c_q.weight.view(width, heads, dim).transpose(0, 1)  # (H, n, d)
        qk = torch.bmm(w_q, k_t).view(heads, width, n_ctx, n_tok).permute(2, 1, 0, 3)
        qk_bias = torch.bmm(self.c_q.bias.view(heads, 1, dim), k_t).view(heads, n_ctx, n_tok).transpose(0, 1)
        v_h = v.reshape(n_ctx * n_tok, heads, dim).transpose(0, 1)  # (H, U*T, d)
        vp = torch.bmm(v_h, self.c_proj.weight.view(heads, dim, width)).view(heads, n_ctx, n_tok, width)
        return FoldedCrossAttention(qk.reshape(n_ctx, width, heads * n_tok),
                                    qk_bias.reshape(n_ctx, 1, heads * n_tok),
                                    vp.transpose(0, 1).reshape(n_ctx, heads * n_tok, width))

    def forward_folded(self, x: torch.Tensor, folded: FoldedCrossAttention, index: torch.Tensor | None,
                       ) -> torch.Tensor:
        """x (B, L, n) against folded contexts; row b uses context ``index[b]`` (None: context b, or the only one).
        On the CPU the rows of each context run as one GEMM (no per-row copy of the folded matrices)."""
        qk, qk_bias, vp = folded.qk, folded.qk_bias, folded.vp
        if qk.shape[0] == 1:  # one context for all rows: single large GEMMs
            return self._folded_rows(x, qk[0], qk_bias[0], vp[0])
        if index is not None and x.device.type == "cpu":
            order = torch.argsort(index, stable=True)
            rows = order.split(torch.bincount(index, minlength=qk.shape[0]).tolist())
            parts = [self._folded_rows(x[r], qk[u], qk_bias[u], vp[u]) for u, r in enumerate(rows) if r.numel()]
            return torch.cat(parts).index_select(0, torch.argsort(order))
        if index is not None:  # accelerators: gather (one batched product beats U small ones)
            qk, qk_bias, vp = qk[index], qk_bias[index], vp[index]
        probs = torch.baddbmm(qk_bias, x, qk)
        return self.resid_dropout(torch.baddbmm(self.c_proj.bias, self._head_softmax(probs), vp))

    def _folded_rows(self, x: torch.Tensor, qk: torch.Tensor, qk_bias: torch.Tensor, vp: torch.Tensor):
        """Rows x (b, L, n) that share one folded context, as two plain GEMMs."""
        scores = torch.addmm(qk_bias, x.reshape(-1, x.shape[-1]), qk).view(*x.shape[:2], -1)
        out = torch.addmm(self.c_proj.bias, self._head_softmax(scores).flatten(0, 1), vp)
        return self.resid_dropout(out.view(x.shape))

    def _head_softmax(self, scores: torch.Tensor) -> torch.Tensor:
        probs = scores.view(*scores.shape[:2], self.n_head, -1).softmax(dim=-1)
        return F.dropout(probs, self._attn_dropout_p(), self.training).view(scores.shape)


class MLP(nn.Module):
    def __init__(self, config: EITConfig):
        super().__init__()
        self.c_fc = Conv1D(config.n_embd, 4 * config.n_embd)  # the published code hard-codes 4x (n_inner ignored)
        self.c_proj = Conv1D(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, fast: bool = True) -> torch.Tensor:
        hidden = self.c_fc(x)
        hidden = F.gelu(hidden, approximate="tanh") if fast else gelu_new(hidden)
        return self.dropout(self.c_proj(hidden))


@dataclass
class VAContext:
    """Arousal and valence condition tokens, each (U, T, n) for U distinct values, with the row -> value index."""

    arousal: torch.Tensor
    valence: torch.Tensor
    arousal_index: torch.Tensor | None = None  # None: one value per row in order (or a single shared value)
    valence_index: torch.Tensor | None = None


class Block(nn.Module):
    def __init__(self, config: EITConfig):
        super().__init__()
        width = config.n_embd
        self.ln_1 = nn.LayerNorm(width, eps=1e-5)
        self.attn = ConditionedAttention(config)
        self.attn_a = ConditionedAttention(config)
        self.ln_a = nn.LayerNorm(width, eps=1e-5)
        self.attn_v = ConditionedAttention(config)
        self.ln_v = nn.LayerNorm(width, eps=1e-5)
        self.ln_2 = nn.LayerNorm(width, eps=1e-5)
        self.mlp = MLP(config)

    def forward_plain(self, h: torch.Tensor, ctx: VAContext) -> torch.Tensor:
        n = self.ln_1(h)
        h = n + self.attn.forward_plain(n, n)
        n = self.ln_a(h)
        h = n + self.attn_a.forward_plain(n, ctx.arousal)  # arousal before valence, as published
        n = self.ln_v(h)
        h = n + self.attn_v.forward_plain(n, ctx.valence)
        return h + self.mlp(self.ln_2(h), fast=False)

    def forward_fast(self, h: torch.Tensor, ctx: VAContext, batch: int, fold: bool | tuple) -> torch.Tensor:
        """``h`` may have batch 1 while ``batch`` > 1 (one prompt, many V-A points): the self-attention sub-layer
        depends on the prompt alone, so it runs once before broadcasting. ``fold``: folded cross-attention for
        both streams, or (arousal, valence)."""
        fold_a, fold_v = (fold, fold) if isinstance(fold, bool) else fold
        n = self.ln_1(h)
        h = n + self.attn.forward_sdpa(n, n)
        if h.shape[0] != batch:
            h = h.expand(batch, -1, -1)
        n = self.ln_a(h)
        h = n + self._cross(self.attn_a, n, ctx.arousal, ctx.arousal_index, fold_a)
        n = self.ln_v(h)
        h = n + self._cross(self.attn_v, n, ctx.valence, ctx.valence_index, fold_v)
        return h + self.mlp(self.ln_2(h), fast=True)

    @staticmethod
    def _cross(attn: ConditionedAttention, x: torch.Tensor, context: torch.Tensor, index: torch.Tensor | None,
               fold: bool) -> torch.Tensor:
        if fold:
            return attn.forward_folded(x, attn.fold(context), index)
        if index is not None:
            context = context[index]
        elif context.shape[0] != x.shape[0]:
            context = context.expand(x.shape[0], -1, -1)
        return attn.forward_sdpa(x, context)


def _scalar_mlp(config: EITConfig) -> nn.Sequential:
    """a_f / v_f: one raw V or A value -> n_tokens condition tokens (flattened)."""
    return nn.Sequential(nn.Linear(1, config.va_hidden), nn.ReLU(),
                         nn.Linear(config.va_hidden, config.n_tokens * config.n_embd))


class EmotionInjectionTransformer(nn.Module):
    """``eit(embeds, valence=v, arousal=a)`` -> emotional embeddings, same shape and dtype as ``embeds``.

    embeds: (B, L, feature_dim) with L <= n_positions (the published model was trained on L = 77 only).
    valence, arousal (keyword-only: the published code takes arousal first): python floats, 0-d tensors, (B,) or
    (B, 1); raw values on the [-3, 3] scale, never clamped. A batch-1 ``embeds`` with N V-A points gives N outputs
    (a V-A grid over one prompt). Inputs are cast to the module's dtype; the output comes back in ``embeds``' dtype.

    ``fast`` (attribute, or per call) picks the optimised path; ``fold_cross`` (attribute) picks the folded
    cross-attention inside it (True) or SDPA (False); None, the default, applies the deterministic shape and device
    rule of ``emo_core.emoticrafter.eit_paths`` per stream. All paths compute the same function and support
    autograd and train-mode dropout.
    """

    def __init__(self, config: EITConfig | None = None, fast: bool = True, fold_cross: bool | None = None):
        super().__init__()
        self.config = config = config or EITConfig()
        self.fast, self.fold_cross = fast, fold_cross
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.xl_feature2gpt_feature = nn.Linear(config.feature_dim, config.n_embd, bias=False)
        self.gpt_feature2xl_feature = nn.Linear(config.n_embd, config.feature_dim, bias=False)
        self.ln_xl_feature = nn.LayerNorm(config.feature_dim, eps=1e-5)  # eps hard-coded in the published code
        self.a_f = _scalar_mlp(config)
        self.v_f = _scalar_mlp(config)
        self.attn_proj = nn.Linear(config.n_embd, config.n_embd, bias=False)  # shared by the A and V streams
        self.drop = nn.Dropout(config.dropout)
        self.h = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=1e-5)
        init_published_weights(self)

    @property
    def dtype(self) -> torch.dtype:
        return self.wpe.weight.dtype

    def forward(self, embeds: torch.Tensor, *, valence, arousal, fast: bool | None = None) -> torch.Tensor:
        fast = self.fast if fast is None else fast
        if embeds.dim() != 3 or embeds.shape[-1] != self.config.feature_dim:
            raise ValueError(f"embeds must be (B, L, {self.config.feature_dim}), got {tuple(embeds.shape)}")
        length = embeds.shape[1]
        if not 1 <= length <= self.config.n_positions:
            raise ValueError(f"sequence length {length} is outside 1..{self.config.n_positions} (n_positions)")
        param = self.wpe.weight
        arousal_col = _va_column("arousal", arousal, param)
        valence_col = _va_column("valence", valence, param)
        batch = _common_batch(embeds.shape[0], arousal_col.shape[0], valence_col.shape[0])
        # The prompt-only prefix is shared across V-A points when it cannot differ per row (no dropout mask).
        share_prompt = fast and not self.training
        if not share_prompt and embeds.shape[0] != batch:
            embeds = embeds.expand(batch, -1, -1)
        x = embeds.to(param.dtype)
        h = self.drop(self.xl_feature2gpt_feature(x) + self.wpe.weight[:length])
        if fast:
            ctx = self._va_context(arousal_col, valence_col, dedupe=not self.training)
            fold = self._fold(embeds, ctx, batch)
            for block in self.h:
                h = block.forward_fast(h, ctx, batch, fold)
        else:
            ctx = VAContext(self._va_tokens(self.a_f, arousal_col.expand(batch, 1)),
                            self._va_tokens(self.v_f, valence_col.expand(batch, 1)))
            for block in self.h:
                h = block.forward_plain(h, ctx)
        delta = self.ln_xl_feature(self.gpt_feature2xl_feature(self.ln_f(h)))
        # Add in the caller's dtype: a bf16 module then only rounds the change, not the prompt itself.
        return embeds + delta.to(embeds.dtype)

    def _fold(self, embeds: torch.Tensor, ctx: VAContext, batch: int) -> tuple[bool, bool]:
        """(arousal, valence): folded cross-attention? ``fold_cross`` if set, else ``eit_paths.use_folded``."""
        if self.fold_cross is not None:
            return self.fold_cross, self.fold_cross
        cfg, device = self.config, self.wpe.weight.device.type
        grad = torch.is_grad_enabled() and (embeds.requires_grad or self.wpe.weight.requires_grad)
        return tuple(use_folded(device, batch, tokens.shape[0], embeds.shape[1], cfg.n_embd, cfg.n_head,
                                cfg.n_tokens, grad) for tokens in (ctx.arousal, ctx.valence))

    def _va_tokens(self, mlp: nn.Sequential, values: torch.Tensor) -> torch.Tensor:
        """(U, 1) raw values -> (U, n_tokens, n_embd) condition tokens."""
        tokens = mlp(values).view(values.shape[0], self.config.n_tokens, self.config.n_embd)
        return self.attn_proj(tokens)

    def _va_context(self, arousal: torch.Tensor, valence: torch.Tensor, dedupe: bool) -> VAContext:
        """Condition tokens once per distinct value (a 5x5 grid has 5 of each), plus the row -> value index."""

        def distinct(col: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            if col.shape[0] == 1 or not dedupe:
                return col, None
            values, index = torch.unique(col.view(-1), sorted=False, return_inverse=True)
            if values.shape[0] == col.shape[0]:
                return col, None
            return values.view(-1, 1), index

        a_values, a_index = distinct(arousal)
        v_values, v_index = distinct(valence)
        return VAContext(self._va_tokens(self.a_f, a_values), self._va_tokens(self.v_f, v_values),
                         a_index, v_index)


def _va_column(name: str, value, like: torch.Tensor) -> torch.Tensor:
    """A float, 0-d, (B,) or (B, 1) value -> (B, 1) tensor in the module's dtype and device."""
    col = torch.as_tensor(value).to(device=like.device, dtype=like.dtype)
    if col.dim() == 0:
        return col.view(1, 1)
    if col.dim() == 1 or (col.dim() == 2 and col.shape[1] == 1):
        return col.reshape(-1, 1)
    raise ValueError(f"{name} must be a number, (B,) or (B, 1); got shape {tuple(col.shape)}")


def _common_batch(*sizes: int) -> int:
    batch = max(sizes)
    if any(size not in (1, batch) for size in sizes):
        raise ValueError(f"batch sizes of embeds, arousal and valence do not broadcast: {sizes}")
    return batch


@torch.no_grad()
def init_published_weights(model: EmotionInjectionTransformer, generator: torch.Generator | None = None) -> None:
    """Initialise as the published constructor leaves a fresh model (README "Official initialisation").

    Its ``init_weights()`` runs before most sub-modules exist, so only ``wpe`` and the two 2048<->n projections get
    GPT-2's N(0, 0.02) and ``ln_xl_feature`` 1/0; ``a_f``, ``v_f`` and ``attn_proj`` keep PyTorch's default Linear
    init; every Conv1D gets N(0, 0.02) weights and zero bias (no scaled c_proj init); LayerNorms 1/0.
    """
    std = CONV1D_INIT_STD
    for weight in (model.wpe.weight, model.xl_feature2gpt_feature.weight, model.gpt_feature2xl_feature.weight):
        weight.normal_(0.0, std, generator=generator)
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.reset_parameters()
        elif isinstance(module, Conv1D):
            module.weight.normal_(0.0, std, generator=generator)
            module.bias.zero_()
    for module in (*model.a_f, *model.v_f, model.attn_proj):
        if isinstance(module, nn.Linear):
            _kaiming_uniform_linear(module, generator)


def _kaiming_uniform_linear(linear: nn.Linear, generator: torch.Generator | None) -> None:
    """nn.Linear.reset_parameters, with an optional generator: U(±1/sqrt(fan_in)) for weight and bias."""
    bound = 1.0 / math.sqrt(linear.in_features)
    linear.weight.uniform_(-bound, bound, generator=generator)
    if linear.bias is not None:
        linear.bias.uniform_(-bound, bound, generator=generator)
