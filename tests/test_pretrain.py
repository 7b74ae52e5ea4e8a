"""The pre-training loop: it learns, checkpoints atomically, resumes exactly, refuses unsafe files."""
import pickle

import pytest
import torch

from mavil_lite.dataset import ClipTensors
from mavil_lite.model import create_model
from mavil_lite.pretrain import PretrainConfig, load_checkpoint, pretrain

MINI = dict(audio_size=(64, 32), video_size=(4, 32, 32), dim=48, audio_depth=1, video_depth=1, num_heads=2,
            fusion_depth=1, decoder_dim=48, decoder_depth=1, decoder_heads=2, contrast_dim=16,
            inter_contrast_weight=0.1, intra_contrast_weight=0.1)


def clips(n=16):
    g = torch.Generator().manual_seed(0)
    return ClipTensors(
        audio=torch.randn(n, 1, 64, 32, generator=g),
        video=torch.randint(0, 255, (n, 4, 32, 32, 3), generator=g, dtype=torch.uint8),
        targets=torch.zeros(n, 2), classes=["a", "b"], splits=["train"] * n, files=[f"{i}.mp4" for i in range(n)],
    )


def model():
    torch.manual_seed(0)
    return create_model("tiny", **MINI)


CONFIG = PretrainConfig(epochs=2, batch_size=8, base_lr=0.05, warmup_epochs=1)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    straight = model()
    torch.manual_seed(1)
    full = pretrain(straight, clips(), CONFIG, checkpoint=tmp_path / "a.pt", progress=False)

    resumed = model()
    torch.manual_seed(1)
    pretrain(resumed, clips(), PretrainConfig(**{**CONFIG.__dict__, "epochs": 1}), checkpoint=tmp_path / "b.pt", progress=False)
    state = load_checkpoint(tmp_path / "b.pt")
    assert state["epoch"] == 1 and not (tmp_path / "b.pt.tmp").exists()
    again = model()  # a fresh process would start from a fresh model
    torch.manual_seed(999)  # and from another RNG state: the checkpoint must restore it
    second = pretrain(again, clips(), CONFIG, checkpoint=tmp_path / "b.pt", progress=False)
    for (name, a), b in zip(straight.state_dict().items(), again.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    assert second.history["loss"] == full.history["loss"]
    assert len(full.history["loss"]) == 4 and full.wall_s > 0


def test_finished_run_returns_its_history_without_training(tmp_path):
    first = pretrain(model(), clips(), CONFIG, checkpoint=tmp_path / "c.pt", progress=False)
    reloaded = model()
    again = pretrain(reloaded, clips(), CONFIG, checkpoint=tmp_path / "c.pt", progress=False)
    assert again.history == first.history and again.wall_s == first.wall_s


def test_checkpoint_needing_pickle_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": pickle.loads(pickle.dumps(PretrainConfig()))}, path)
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(path)


def test_non_finite_loss_stops_with_the_step_and_term(tmp_path):
    data = clips()
    data.audio[:] = float("nan")
    with pytest.raises(FloatingPointError, match=r"recon_audio.*step 0"):
        pretrain(model(), data, CONFIG, progress=False)


def test_too_few_clips_for_a_batch():
    with pytest.raises(ValueError, match="fewer than one batch"):
        pretrain(model(), clips(4), CONFIG, progress=False)
