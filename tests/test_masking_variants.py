"""Masking variants for the teaching notebooks: structured masks, pixel masks, the copy-a-neighbour predictor."""
import pytest
import torch

from mavil_lite.model.masking import (
    mask_to_pixels,
    masking_from_noise,
    nearest_visible_fill,
    num_visible,
    random_masking,
    time_frequency_masking,
    tube_masking,
)
from mavil_lite.model.mavil import create_model


def test_masking_from_noise_keeps_the_lowest_noise_and_matches_random_masking():
    tokens = torch.randn(3, 12, 4)
    noise = torch.rand(3, 12, generator=torch.Generator().manual_seed(0))
    ours, reference = masking_from_noise(tokens, noise, num_visible(12, 0.75)), random_masking(tokens, 0.75, noise)
    for a, b in zip(ours, reference):
        assert torch.equal(a, b)
    kept = (ours.mask == 0)
    assert torch.equal(kept, noise <= noise.sort(dim=1).values[:, 2:3])  # the 3 smallest noises are visible


def test_time_frequency_masking_hides_whole_rows_and_columns():
    grid = (24, 4)
    tokens = torch.randn(5, 96, 2)
    masked = time_frequency_masking(tokens, grid, 0.6, 0.5, torch.Generator().manual_seed(1))
    mask = masked.mask.reshape(5, *grid)  # (B, T, F)
    for sample in mask:
        hidden_rows = sample.all(dim=1)  # rows hidden across every frequency
        hidden_cols = sample.all(dim=0)
        assert int(hidden_rows.sum()) == round(0.6 * 24) and int(hidden_cols.sum()) == 2
        # a token is hidden exactly when its row or its column is
        assert torch.equal(sample.bool(), hidden_rows[:, None] | hidden_cols[None, :])
    assert masked.visible.shape == (5, (24 - 14) * 2, 2)
    with pytest.raises(ValueError, match="leaves nothing"):
        time_frequency_masking(tokens, grid, 0.99, 0.5)
    with pytest.raises(ValueError, match="cells"):
        time_frequency_masking(tokens, (10, 4), 0.5, 0.5)


def test_tube_masking_repeats_one_spatial_mask_over_time():
    grid = (4, 5, 5)
    tokens = torch.randn(3, 100, 2)
    masked = tube_masking(tokens, grid, 0.8, torch.Generator().manual_seed(2))
    mask = masked.mask.reshape(3, *grid)
    assert torch.equal(mask, mask[:, :1].expand_as(mask))  # the same hidden places at every time slice
    assert masked.visible.shape == (3, 4 * num_visible(25, 0.8), 2)
    # visible tokens are the ones the mask says, gathered correctly
    for b in range(3):
        positions = (masked.mask[b] == 0).nonzero().flatten()
        assert sorted(masked.visible[b, :, 0].tolist()) == sorted(tokens[b, positions, 0].tolist())


def test_mask_to_pixels_matches_unpatchify_of_the_token_mask():
    model = create_model("tiny")
    for modality, grid, patch in (("audio", (24, 4), (16, 16)), ("video", (2, 4, 4), (2, 16, 16))):
        n = int(torch.tensor(grid).prod())
        mask = (torch.rand(2, n, generator=torch.Generator().manual_seed(3)) > 0.5).float()
        expected = model.unpatchify(modality, mask[..., None].expand(-1, -1, model.patch_pixels(modality)))
        assert torch.equal(mask_to_pixels(mask, grid, patch), expected[:, 0])  # one channel of it


def test_nearest_visible_fill_copies_the_nearest_visible_patch():
    grid = (1, 5)  # a row of five patches whose value is their position
    patches = torch.arange(5.0).view(1, 5, 1)
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]])  # positions 0 and 4 visible
    filled = nearest_visible_fill(patches, mask, grid)
    assert filled.flatten().tolist() == [0.0, 0.0, 0.0, 4.0, 4.0]  # 2 is equidistant: the lower index wins
    assert torch.equal(nearest_visible_fill(patches, torch.zeros(1, 5), grid), patches)  # nothing hidden


def test_nearest_visible_distance_counts_patches_to_the_nearest_visible_one():
    from mavil_lite.model.masking import nearest_visible_distance

    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]])
    assert nearest_visible_distance(mask, (1, 5)).tolist() == [[0.0, 1.0, 2.0, 1.0, 0.0]]
    grid_mask = torch.ones(1, 9)
    grid_mask[0, 0] = 0  # only the corner of a 3 x 3 grid visible
    assert nearest_visible_distance(grid_mask, (3, 3))[0, 8].item() == pytest.approx(2 ** 1.5)
