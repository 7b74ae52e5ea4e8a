"""Where the fusion blocks look: how much of each modality's attention goes to the other modality.

MAViL's joint blocks attend over ``[audio tokens, video tokens]`` with nothing that marks a token's modality.
Whether audio tokens use the video at all is a measurement, not a given: :func:`cross_modal_attention` reads
the attention weights of every fusion block and sums, for each query token, the weight it puts on the other
modality's tokens. Attention spread evenly over all tokens would put ``N_other / N_total`` there; that is the
reference the shares are read against.
"""
from __future__ import annotations

import torch
from torch import Tensor


def attention_weights(block, x: Tensor) -> Tensor:
    """The softmax attention weights of a timm ``Block`` on its input ``x`` ``(B, N, dim)``: ``(B, heads, N, N)``.

    Recomputed from the block's own layers (its fused kernel does not return them), the way the block computes
    them: pre-norm, qkv projection, per-head q/k norms, scaled dot products.
    """
    attn = block.attn
    b, n, _ = x.shape
    qkv = attn.qkv(block.norm1(x)).reshape(b, n, 3, attn.num_heads, attn.head_dim)  # (B, N, 3, heads, head_dim)
    q, k, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, heads, N, head_dim)
    q, k = attn.q_norm(q), attn.k_norm(k)
    return ((q * attn.scale) @ k.transpose(-2, -1)).softmax(dim=-1)  # (B, heads, N, N)


@torch.no_grad()
def cross_modal_attention(model, audio: Tensor, video: Tensor) -> list[dict[str, float]]:
    """Per fusion block: the mean share of attention that audio patch tokens give to video tokens
    (``"audio->video"``) and video patch tokens to audio tokens (``"video->audio"``), with the shares that
    uniform attention would give (``"uniform audio->video"``, ``"uniform video->audio"``).

    audio ``(B, 1, T, F)``, video ``(B, 3, frames, H, W)``, unmasked. Each modality's CLS token is counted with
    its modality's keys and left out of the queries.
    """
    tokens = {m: model.encoders[m](x) for m, x in (("audio", audio), ("video", video))}  # (B, 1 + N, dim) each
    n_audio = tokens["audio"].shape[1]
    x = torch.cat([tokens["audio"], tokens["video"]], dim=1)  # (B, n_audio + n_video, dim)
    n_total = x.shape[1]
    shares = []
    for block in model.fusion:
        weights = attention_weights(block, x).mean(dim=1)  # (B, N, N), averaged over heads
        audio_to_video = weights[:, 1:n_audio, n_audio:].sum(-1).mean()  # audio patch queries, video keys
        video_to_audio = weights[:, n_audio + 1:, :n_audio].sum(-1).mean()  # video patch queries, audio keys
        shares.append({"audio->video": float(audio_to_video), "video->audio": float(video_to_audio),
                       "uniform audio->video": (n_total - n_audio) / n_total,
                       "uniform video->audio": n_audio / n_total})
        x = block(x)
    return shares
