"""MAE random masking: each sample keeps a random subset of its tokens; the encoder sees only those.

MAViL masks each modality independently with the same ratio (0.8 in the paper). With 80% masking the
encoders process a fifth of the tokens, which is what makes MAE-style pre-training cheap.

Convention (as in MAE): ``mask`` is 1 for a masked (hidden) token and 0 for a visible one, in the
original token order; ``ids_restore`` undoes the shuffle so a decoder can put mask tokens back in place.

For teaching and comparison (MAViL itself pre-trains with random masking): structured variants with the
same output (:func:`time_frequency_masking` for audio, :func:`tube_masking` for video), token masks at input
resolution for figures (:func:`mask_to_pixels`), and a no-learning predictor that copies the nearest visible
patch (:func:`nearest_visible_fill`), whose error shows how much a mask leaves to infer.
"""
from __future__ import annotations

from typing import NamedTuple

import torch


class Masked(NamedTuple):
    visible: torch.Tensor  # (B, n_keep, D) the kept tokens, in shuffled order
    mask: torch.Tensor  # (B, N) 1 = masked, 0 = visible, original order
    ids_restore: torch.Tensor  # (B, N) position of each original token in [visible, masked] order


def num_visible(num_tokens: int, mask_ratio: float) -> int:
    """How many of ``num_tokens`` stay visible at ``mask_ratio`` (at least one, so pooling is defined)."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    # MAE floors N * (1 - ratio); the epsilon stops float error turning 10 * 0.2 = 1.999... into 1.
    return max(1, int(num_tokens * (1 - mask_ratio) + 1e-6))


def random_masking(tokens: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None) -> Masked:
    """Keep a random ``1 - mask_ratio`` of each sample's tokens (per-sample shuffle, keep the first ones).

    tokens: ``(B, N, D)``; noise: ``(B, N)`` uniform scores (the lowest are kept), drawn here when not
    given. Passing noise lets a distributed run draw one global batch's masks and hand each process its
    rows, so N processes mask exactly as one process would. Returns :class:`Masked` with ``visible`` of
    shape ``(B, num_visible(N), D)``.
    """
    batch, num_tokens, _ = tokens.shape
    if noise is None:
        noise = torch.rand(batch, num_tokens, device=tokens.device)  # (B, N)
    return masking_from_noise(tokens, noise, num_visible(num_tokens, mask_ratio))


def rows_of_batch(noise: torch.Tensor, global_batch: int, start: int, size: int) -> torch.Tensor:
    """This process's rows of masking noise drawn for a global batch: ``(views * G, N) -> (views * size, N)``."""
    views = noise.shape[0] // global_batch
    return noise.view(views, global_batch, -1)[:, start:start + size].flatten(0, 1)


def unmasked(tokens: torch.Tensor) -> Masked:
    """The identity 'masking' (ratio 0, no shuffle): what a teacher or an evaluation pass sees."""
    batch, num_tokens, _ = tokens.shape
    ids = torch.arange(num_tokens, device=tokens.device).expand(batch, -1)  # (B, N)
    return Masked(tokens, torch.zeros(batch, num_tokens, device=tokens.device), ids)


# ------------------------------------------------------------------------------ variants and inspection
def masking_from_noise(tokens: torch.Tensor, noise: torch.Tensor, keep: int) -> Masked:
    """Keep, per sample, the ``keep`` tokens with the smallest ``noise`` (MAE's shuffle-and-keep, any noise).

    tokens: ``(B, N, D)``; noise: ``(B, N)``. Every masking scheme here is this with a different noise:
    uniform noise is random masking; noise that is large on chosen rows/columns/tubes gives structured masks.
    The number kept is the same for every sample, so the visible tokens still stack into one tensor.
    """
    batch, num_tokens, dim = tokens.shape
    ids_shuffle = torch.argsort(noise, dim=1)  # ascending: the smallest noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    ids_keep = ids_shuffle[:, :keep]  # (B, keep)
    visible = torch.gather(tokens, 1, ids_keep.unsqueeze(-1).expand(-1, -1, dim))  # (B, keep, D)
    mask = torch.ones(batch, num_tokens, device=tokens.device)
    mask[:, :keep] = 0
    return Masked(visible, torch.gather(mask, 1, ids_restore), ids_restore)


def time_frequency_masking(
    tokens: torch.Tensor,
    grid_size: tuple[int, int],
    time_ratio: float,
    freq_ratio: float,
    generator: torch.Generator | None = None,
) -> Masked:
    """Structured audio masking: hide whole time rows and whole frequency columns of the patch grid.

    tokens: ``(B, N, D)`` in time-major order over ``grid_size = (time patches, frequency patches)``.
    ``round(time_ratio * T)`` time rows and ``round(freq_ratio * F)`` frequency columns are drawn per sample;
    a token is hidden when its row or its column is. The overall ratio is ``1 - (1 - rt)(1 - rf)``
    (0.8 for rt = 0.6, rf = 0.5). Unlike random masking it leaves no visible neighbour in the same
    band or instant, so the model cannot fill a gap by copying an adjacent patch (AudioMAE's variant).
    """
    batch, num_tokens, _ = tokens.shape
    t, f = grid_size
    if t * f != num_tokens:
        raise ValueError(f"grid {grid_size} has {t * f} cells but there are {num_tokens} tokens")
    n_t, n_f = round(time_ratio * t), round(freq_ratio * f)
    if n_t >= t or n_f >= f:
        raise ValueError(f"masking {n_t}/{t} time rows and {n_f}/{f} frequency columns leaves nothing visible")
    rows = torch.rand(batch, t, generator=generator).argsort(dim=1) < n_t  # (B, T) hidden rows
    cols = torch.rand(batch, f, generator=generator).argsort(dim=1) < n_f  # (B, F) hidden columns
    hidden = (rows[:, :, None] | cols[:, None, :]).reshape(batch, num_tokens)  # (B, N)
    # hidden tokens get noise in [1, 2), visible ones in [0, 1): exactly the visible ones are kept
    noise = torch.rand(batch, num_tokens, generator=generator) + hidden.float()
    return masking_from_noise(tokens, noise.to(tokens.device), (t - n_t) * (f - n_f))


def tube_masking(
    tokens: torch.Tensor, grid_size: tuple[int, int, int], mask_ratio: float, generator: torch.Generator | None = None
) -> Masked:
    """Video tube masking (VideoMAE): one random spatial mask, repeated over every temporal slice.

    tokens: ``(B, N, D)`` in time-major order over ``grid_size = (t, h, w)`` tubelets. Each sample keeps
    ``num_visible(h * w, mask_ratio)`` spatial positions in every slice. Random masking, by contrast, often
    leaves the same position visible in a neighbouring slice, and a static scene can be copied from it.
    """
    batch, num_tokens, _ = tokens.shape
    t, h, w = grid_size
    if t * h * w != num_tokens:
        raise ValueError(f"grid {grid_size} has {t * h * w} cells but there are {num_tokens} tokens")
    place_rank = torch.rand(batch, h * w, generator=generator).argsort(dim=1).argsort(dim=1)  # (B, h*w) a random order
    # every slice of a place gets consecutive scores, so the kept tokens are whole tubes: the k best-ranked places
    noise = (place_rank[:, None, :] * t + torch.arange(t).view(1, t, 1)).float()  # (B, t, h*w)
    return masking_from_noise(tokens, noise.reshape(batch, num_tokens).to(tokens.device),
                              t * num_visible(h * w, mask_ratio))


def mask_to_pixels(mask: torch.Tensor, grid_size: tuple[int, ...], patch_size: tuple[int, ...]) -> torch.Tensor:
    """Token mask ``(B, N)`` -> input-resolution mask ``(B, *grid * patch)``: audio ``(B, T, F)``,
    video ``(B, frames, H, W)``. Each token's value is repeated over the inputs its patch covers (for figures).
    """
    if len(grid_size) != len(patch_size):
        raise ValueError(f"grid {grid_size} and patch {patch_size} must have the same number of axes")
    pixels = mask.reshape(mask.shape[0], *grid_size)
    for axis, size in enumerate(patch_size):
        pixels = pixels.repeat_interleave(size, dim=axis + 1)
    return pixels


def _nearest_visible(mask: torch.Tensor, grid_size: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """For every token, the index of the nearest visible token and the grid distance to it: ``(B, N)`` each.

    Distances are Euclidean in grid units (0 for a visible token); ties go to the lower token index.
    """
    coords = torch.stack(torch.meshgrid(*[torch.arange(n) for n in grid_size], indexing="ij"), dim=-1)
    coords = coords.reshape(-1, len(grid_size)).float().to(mask.device)  # (N, axes)
    distance = torch.cdist(coords, coords)  # (N, N)
    hidden_source = mask.bool().unsqueeze(1)  # (B, 1, N source): a hidden token cannot be copied from
    distance = distance.unsqueeze(0).masked_fill(hidden_source, float("inf"))  # (B, N target, N source)
    nearest, source = distance.min(dim=2)  # (B, N) each
    return source, nearest


def nearest_visible_fill(patches: torch.Tensor, mask: torch.Tensor, grid_size: tuple[int, ...]) -> torch.Tensor:
    """A no-learning reconstruction: each hidden patch copies the nearest visible patch on the token grid.

    patches: ``(B, N, P)``; mask: ``(B, N)`` with 1 = hidden; returns ``(B, N, P)`` (visible patches unchanged).
    Its error measures how much a masking scheme leaves to be inferred: when neighbours are visible, copying
    them goes a long way, and the pretext task teaches little.
    """
    source, _ = _nearest_visible(mask, grid_size)
    return torch.gather(patches, 1, source.unsqueeze(-1).expand(-1, -1, patches.shape[-1]))


def nearest_visible_distance(mask: torch.Tensor, grid_size: tuple[int, ...]) -> torch.Tensor:
    """How far each token is from the nearest visible one, in patches: ``(B, N)``, 0 for visible tokens.

    The mean over hidden tokens says how local the evidence for a hidden patch is: about 1 at low ratios
    (a visible neighbour is adjacent), more at high ratios and under structured masks.
    """
    return _nearest_visible(mask, grid_size)[1]
