"""Fine-tuning: heads per modality, layer-wise lr decay order, augmentations, and that it learns."""
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from mavil_lite.engine import TrainConfig
from mavil_lite.finetune import (FinetuneConfig, MAViLClassifier, balanced_sample_weights, classifier_param_groups,
                                 finetune, predict, spec_augment)
from mavil_lite.metrics import accuracy

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import clips, model  # noqa: E402


def labelled(n=32):
    data = clips(n)
    label = torch.arange(n) % 2
    data.audio += (label.float() * 2 - 1).view(n, 1, 1, 1)  # class 1 is louder: linearly separable
    data.targets = torch.nn.functional.one_hot(label, 2).float()
    return data


@pytest.mark.parametrize("modality, width", [("audio", 48), ("video", 48), ("av", 96)])
def test_heads_pool_the_right_tokens(modality, width):
    classifier = MAViLClassifier(model(), modality, num_classes=3)
    data = clips(4)
    audio, video, _ = data.batch(torch.arange(4))
    assert classifier.features(audio, video).shape == (4, width)
    assert classifier(audio, video).shape == (4, 3)


def test_av_head_needs_both_modalities():
    with pytest.raises(ValueError, match="needs a backbone"):
        MAViLClassifier(model(modalities=("audio",), inter_contrast_weight=0, intra_contrast_weight=0), "av", 2)


def test_layer_decay_gives_deeper_layers_larger_lr():
    classifier = MAViLClassifier(model(audio_depth=2, video_depth=2), "av", 2)
    groups = classifier_param_groups(classifier, TrainConfig(), layer_decay=0.5)
    scale = {name: g["lr_scale"] for g in groups for name, p in classifier.named_parameters()
             if any(p is q for q in g["params"])}
    stem = scale["backbone.encoders.audio.patch_embed.proj.weight"]
    block0, block1 = scale["backbone.encoders.audio.blocks.0.attn.qkv.weight"], scale["backbone.encoders.video.blocks.1.mlp.fc1.weight"]
    fusion, head = scale["backbone.fusion.0.attn.qkv.weight"], scale["head.weight"]
    assert stem < block0 < block1 < fusion < head == 1.0
    assert block0 / stem == pytest.approx(2.0)


def test_spec_augment_masks_one_band_and_one_span():
    torch.manual_seed(0)
    x = torch.ones(3, 1, 100, 40)
    y = spec_augment(x, freq_mask=10, time_mask=20)
    assert y.shape == x.shape and (y == 0).any() and (y[0].sum(dim=(0, 1)) > 0).sum() >= 30


def test_balanced_weights_favour_rare_labels():
    targets = torch.tensor([[1, 0], [1, 0], [1, 0], [0, 1]], dtype=torch.float)
    w = balanced_sample_weights(targets)
    assert w[3] == pytest.approx(3 * w[0])


@pytest.mark.parametrize("linear_probe", [True, False])
def test_finetune_learns_a_separable_task(linear_probe):
    data = labelled()
    classifier = MAViLClassifier(model(), "audio", num_classes=2)
    before = accuracy(predict(classifier, data), data.targets)
    frozen = classifier.backbone.encoders["audio"].blocks[0].mlp.fc1.weight.clone()
    config = FinetuneConfig(modality="audio", linear_probe=linear_probe, mixup=0.0, freq_mask=4, time_mask=8)
    result = finetune(classifier, data, TrainConfig(epochs=15, batch_size=8, base_lr=0.2, warmup_epochs=1,
                                                    weight_decay=0.0), config, progress=False)
    after = accuracy(predict(classifier, data), data.targets)
    assert after >= 0.9 and after > before and result.history["loss"][-1] < result.history["loss"][0]
    unchanged = torch.equal(frozen, classifier.backbone.encoders["audio"].blocks[0].mlp.fc1.weight)
    assert unchanged == linear_probe


def _predict_worker(rank, world, port, out):
    import os
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world))
    torch.set_num_threads(1)
    from mavil_lite.distributed import init_distributed
    init_distributed("cpu")
    torch.manual_seed(0)
    logits = predict(MAViLClassifier(model(), "audio", num_classes=3), clips(7), batch_size=2)
    if rank == 0:
        torch.save(logits, out)
    torch.distributed.destroy_process_group()


def test_distributed_predictions_count_every_clip_once(tmp_path):
    """7 clips over 2 processes: the sampler pads to 8; the gathered logits must be the 7, in order."""
    import socket
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_predict_worker, args=(2, port, str(tmp_path / "logits.pt")), nprocs=2, join=True)
    torch.manual_seed(0)
    single = predict(MAViLClassifier(model(), "audio", num_classes=3), clips(7))
    gathered = torch.load(tmp_path / "logits.pt", weights_only=True)
    assert gathered.shape == (7, 3)
    torch.testing.assert_close(gathered, single, atol=1e-5, rtol=1e-5)
