"""The training engine through pre-training: it learns, checkpoints atomically, resumes exactly (also after
SIGKILL), refuses unsafe files, stops on divergence, and N gloo processes equal one process."""
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from mavil_lite.distributed import init_distributed
from mavil_lite.train.engine import TrainConfig, load_checkpoint
from mavil_lite.train.pretrain import pretrain

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import CONFIG, LONG, clips, model  # noqa: E402


def assert_same_weights(a, b, atol=0.0):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, atol=atol, rtol=0 if atol == 0 else 1e-4, msg=name)


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    straight = model()
    full = pretrain(straight, clips(), CONFIG, checkpoint=tmp_path / "a.pt", progress=False)
    pretrain(model(), clips(), replace(CONFIG, epochs=1), checkpoint=tmp_path / "b.pt", progress=False)
    state = load_checkpoint(tmp_path / "b.pt")
    assert state["epoch"] == 1 and state["step"] == 2 and not (tmp_path / "b.pt.tmp").exists()
    again = model()  # a fresh process starts from a fresh model
    torch.manual_seed(999)  # and from another RNG state: nothing may depend on it
    second = pretrain(again, clips(), CONFIG, checkpoint=tmp_path / "b.pt", progress=False)
    assert_same_weights(straight, again)
    assert second.history["loss"] == full.history["loss"]
    assert len(full.history["loss"]) == 4 and full.wall_s > 0


RESUME_THREADS = 1  # what tiny_run.py trains its child with: an exact resume needs the same thread count


def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    checkpoint = tmp_path / "killed.pt"
    child = subprocess.Popen([sys.executable, str(Path(__file__).parent / "tiny_run.py"), str(checkpoint)],
                             env={**os.environ, "OMP_NUM_THREADS": str(RESUME_THREADS)})
    try:
        deadline = time.time() + 120
        while time.time() < deadline and child.poll() is None:
            if checkpoint.exists() and load_checkpoint(checkpoint)["step"] >= 5:
                break
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait()
    killed_at = load_checkpoint(checkpoint)["step"]
    steps_per_epoch = 16 // LONG.batch_size
    assert 5 <= killed_at < LONG.epochs * steps_per_epoch, "the child must die mid-run"
    threads = torch.get_num_threads()  # pytest's own count (xdist workers use 1, a plain run all cores)
    torch.set_num_threads(RESUME_THREADS)
    try:
        resumed = model()
        pretrain(resumed, clips(), LONG, checkpoint=checkpoint, progress=False)
        uninterrupted = model()
        pretrain(uninterrupted, clips(), LONG, progress=False)
    finally:
        torch.set_num_threads(threads)
    assert_same_weights(resumed, uninterrupted)


def _ddp_worker(rank, world, port, out, partial):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    ctx = init_distributed("cpu")
    trained = model()
    result = pretrain(trained, clips(partial=partial), replace(CONFIG, batch_size=CONFIG.batch_size // world), ctx=ctx,
                      progress=False)
    if rank == 0:
        torch.save({"model": trained.state_dict(), "loss": result.history["loss"]}, out)
    torch.distributed.destroy_process_group()


@pytest.mark.parametrize("partial", [False, True], ids=["every clip whole", "some clips lack a modality"])
def test_two_gloo_processes_equal_one_process_on_the_same_global_batch(tmp_path, partial):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, port, str(out), partial), nprocs=2, join=True)
    ddp = load_checkpoint(out)
    single = model()
    torch.set_num_threads(1)
    result = pretrain(single, clips(partial=partial), CONFIG, progress=False)
    for name, value in single.state_dict().items():
        other = ddp["model"][name]
        if name.endswith("attn.qkv.bias"):
            # The key bias adds a constant to each softmax row, so its true gradient is 0 and it only
            # receives float rounding noise, which Adam rescales into lr-sized steps: compare the
            # query and value biases exactly, and skip the key third.
            dim = value.shape[0] // 3
            value, other = torch.cat([value[:dim], value[2 * dim:]]), torch.cat([other[:dim], other[2 * dim:]])
        torch.testing.assert_close(other, value, atol=2e-5, rtol=1e-4, msg=name)
    torch.testing.assert_close(torch.tensor(ddp["loss"]), torch.tensor(result.history["loss"]), atol=1e-5, rtol=1e-5)


def test_finished_run_returns_its_history_without_training(tmp_path):
    first = pretrain(model(), clips(), CONFIG, checkpoint=tmp_path / "c.pt", progress=False)
    again = pretrain(model(), clips(), CONFIG, checkpoint=tmp_path / "c.pt", progress=False)
    assert again.history == first.history and again.wall_s == first.wall_s


def test_checkpoint_needing_pickle_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": pickle.loads(pickle.dumps(TrainConfig()))}, path)
    with pytest.raises(pickle.UnpicklingError, match="evil.pt"):
        load_checkpoint(path)


def test_non_finite_loss_stops_with_the_step_and_term(tmp_path):
    data = clips()
    data.audio[:] = float("nan")
    with pytest.raises(FloatingPointError, match=r"recon_audio.*step 0"):
        pretrain(model(), data, CONFIG, progress=False)


def test_too_few_clips_for_a_batch():
    with pytest.raises(ValueError, match="fewer than one batch"):
        pretrain(model(), clips(4), CONFIG, progress=False)


def test_metrics_log_is_json_lines(tmp_path):
    import json
    pretrain(model(), clips(), replace(CONFIG, log_every=1), log_path=tmp_path / "log.jsonl", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3] and {"loss", "inter", "intra_audio", "lr"} <= set(rows[0])


def test_stage2_with_targets_computed_once_trains_like_running_the_teacher_every_step():
    from mavil_lite.train.pretrain import all_teacher_targets, teacher_target_bytes

    teacher = model()
    pretrain(teacher, clips(), CONFIG, progress=False)
    data = clips()
    targets = all_teacher_targets(teacher, data, "cpu", batch_size=5, progress=False)  # batches unlike training's
    assert {m: tuple(t.shape) for m, t in targets.items()} == {"audio": (16, 8, 48), "video": (16, 8, 48)}
    assert teacher_target_bytes(teacher, 16) == 16 * 16 * 48 * 4
    direct = teacher.fused_targets(*data.batch(torch.arange(16))[:2])
    assert all(torch.allclose(targets[m], direct[m], atol=1e-5) for m in direct)

    students = [model(target="teacher") for _ in range(2)]
    runs = [pretrain(student, data, CONFIG, teacher=teacher, cache_teacher_targets=cache, progress=False)
            for student, cache in zip(students, (False, True))]
    assert runs[0].history["loss"] == pytest.approx(runs[1].history["loss"], rel=1e-4)
    assert_same_weights(*students, atol=1e-5)


def test_a_teacher_for_a_model_that_reconstructs_pixels_is_refused_before_any_teacher_pass():
    teacher = model()

    def fail(*args, **kwargs):
        raise AssertionError("the teacher ran before the mistake was reported")

    teacher.fused_targets = fail
    with pytest.raises(ValueError, match="target='pixels'"):
        pretrain(model(), clips(), CONFIG, teacher=teacher, progress=False)
