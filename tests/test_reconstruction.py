"""Reconstructions in input space, and the mean-predictor baseline they are measured against."""
import torch

from mavil_lite.data.dataset import ClipTensors
from mavil_lite.model.losses import normalize_patches
from mavil_lite.model.mavil import create_model
from mavil_lite.teach.reconstruction import (
    dataset_mean_patches,
    denormalize_patches,
    evaluate_reconstruction,
    reconstruct,
)

MINI = dict(audio_size=(64, 32), video_size=(4, 32, 32), dim=48, audio_depth=1, video_depth=1, num_heads=2,
            fusion_depth=1, decoder_dim=48, decoder_depth=1, decoder_heads=2, contrast_dim=16)


def mini(**overrides):
    torch.manual_seed(0)
    return create_model("tiny", **{**MINI, **overrides}).eval()


def clips(n=6):
    g = torch.Generator().manual_seed(1)
    return ClipTensors(audio=torch.randn(n, 1, 64, 32, generator=g),
                       video=torch.randint(0, 255, (n, 4, 32, 32, 3), generator=g, dtype=torch.uint8),
                       targets=torch.eye(n)[:, :3], classes=["a", "b", "c"], splits=["test"] * n,
                       files=[f"{i}.mp4" for i in range(n)])


def test_denormalize_inverts_normalize():
    patches = torch.randn(2, 5, 16) * 3 + 1
    assert torch.allclose(denormalize_patches(normalize_patches(patches), patches), patches, atol=1e-4)


def test_reconstruct_pastes_predictions_into_the_hidden_patches_only():
    model = mini()
    data = clips(2)
    audio, video, _ = data.batch(slice(0, 2))
    with torch.no_grad():
        out = model(audio, video)
    rec = reconstruct(model, "audio", audio, out["preds"]["audio"], out["mask"]["audio"])
    assert rec["pasted"].shape == rec["prediction"].shape == rec["mask"].shape == audio.shape
    visible = rec["mask"] == 0
    assert torch.equal(rec["pasted"][visible], audio[visible])
    assert torch.allclose(rec["pasted"][~visible], rec["prediction"][~visible])
    # normalised targets: the raw output is the normalised-units view, the prediction its de-normalised form
    assert torch.equal(rec["prediction_normalized"], model.unpatchify("audio", out["preds"]["audio"]))
    target = model.patchify("audio", audio)
    assert torch.allclose(rec["target_normalized"], model.unpatchify("audio", normalize_patches(target)))


def test_evaluate_reconstruction_matches_the_loss_and_the_mean_baseline():
    model = mini()
    data = clips(6)
    errors = evaluate_reconstruction(model, data, mask_ratio=0.75, seed=3, batch_size=6)
    audio, video, _ = data.batch(slice(0, 6))
    with torch.no_grad():
        out = model(audio, video, mask_ratio=0.75, noise=model.mask_noise(6, torch.Generator().manual_seed(3)))
    for m in ("audio", "video"):
        assert abs(errors[m]["model"] - out[f"recon_{m}"].item()) < 1e-5  # same masks, same loss
        assert 0.9 < errors[m]["mean"] < 1.0  # predicting 0 in normalised units: each patch's (biased) variance
        assert errors[m]["patches"] == int(out["mask"][m].sum())


def test_raw_targets_are_compared_with_the_dataset_mean():
    model = mini(norm_pix_loss=False)
    data = clips(4)
    means = dataset_mean_patches(model, data, batch_size=3)
    assert means["audio"].shape == (8, 256) and means["video"].shape == (2 * 2 * 2, 3 * 2 * 16 * 16)
    assert torch.allclose(means["audio"], model.patchify("audio", data.audio).mean(0), atol=1e-5)
    errors = evaluate_reconstruction(model, data, mean_patches=means)
    assert all(e["mean"] > 0 for e in errors.values())
