"""The training loop on the CPU: the schedule, the loss going down, checkpoints, exact resume, CLI errors."""
import math
import os
import signal
import subprocess
import sys

import pytest
import torch

from trainer import train
from trainer.checkpoint import list_checkpoints, load_checkpoint, save_checkpoint
from trainer.config import MODELS, ROOT, TrainConfig
from trainer.data import DataLoader
from trainer.engine import TorchEngine
from trainer.model import init_parameters
from trainer.weights import read_llmc

from .conftest import tiny_args


def run_cli(argv):
    """train.py in-process: the history of the run."""
    cfg, loaded = train.parse_args(argv)
    return train.run(cfg, loaded, quiet=True)


def exit_code(argv):
    """train.main's exit code, including argparse's own errors (which raise SystemExit)."""
    try:
        return train.main(argv)
    except SystemExit as e:
        return e.code


def losses(history):
    return [h["loss"] for h in history if "loss" in h]


def test_every_config_field_is_a_documented_flag():
    helps = train.field_help()
    assert set(helps) == set(TrainConfig.field_names())
    text = train.build_parser().format_help()
    for name in TrainConfig.field_names():
        assert "--" + name.replace("_", "-") in text


def test_lr_schedule_warms_up_then_decays_by_cosine():
    cfg = TrainConfig(learning_rate=1.0, warmup_steps=10, final_lr_frac=0.1)
    lr = [train.get_lr(s, cfg, max_steps=110) for s in range(110)]
    assert lr[0] == pytest.approx(0.1) and lr[4] == pytest.approx(0.5) and lr[9] == pytest.approx(1.0)
    assert lr[10] == pytest.approx(1.0)  # decay starts at the peak
    assert lr[60] == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert lr[109] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi * 99 / 100)))
    assert all(a >= b for a, b in zip(lr[10:], lr[11:]))
    constant = TrainConfig(learning_rate=3e-4, final_lr_frac=1.0)
    assert [train.get_lr(s, constant, 50) for s in range(50)] == pytest.approx([3e-4] * 50)


def test_a_few_steps_reduce_the_loss(shards, tmp_path):
    history = run_cli(tiny_args(shards, tmp_path, "--max-steps", "12", "--val-every", "6", "--val-steps", "4"))
    train_losses = losses(history)
    assert len(train_losses) == 12
    assert abs(train_losses[0] - math.log(50257)) < 0.2  # GPT-2's init: uniform-ish over V
    assert sum(train_losses[-3:]) / 3 < train_losses[0] - 1.0
    vals = [h["val_loss"] for h in history if "val_loss" in h]
    assert len(vals) == 3 and vals[-1] < vals[0] - 1.0  # at steps 0, 6, 12
    log = (tmp_path / "train.log").read_text()
    assert "step 12/12 | loss" in log and "MFU n/a" in log and "val loss" in log
    assert "summary: steps 2-12 (the first left out: warm-up) |" in log and "peak process memory" in log
    [ckpt] = list_checkpoints(tmp_path)
    assert ckpt.step == 12 and read_llmc(ckpt.model_path)[0].num_layers == 2


def test_gradient_accumulation_and_bf16_run(shards, tmp_path):
    history = run_cli(tiny_args(shards, tmp_path, "--max-steps", "2", "--total-batch-size", "128", "--dtype", "bf16"))
    assert len(losses(history)) == 2 and all(math.isfinite(x) for x in losses(history))
    assert "2 micro-batches" in (tmp_path / "train.log").read_text()


def test_resume_reproduces_the_uninterrupted_losses_exactly(shards, tmp_path):
    args = ("--max-steps", "6", "--total-batch-size", "128", "--val-every", "2", "--val-steps", "2")
    straight = run_cli(tiny_args(shards, tmp_path / "a", *args))
    first = run_cli(tiny_args(shards, tmp_path / "b", *args, "--stop-at", "3"))
    assert [c.step for c in list_checkpoints(tmp_path / "b")] == [3]
    resumed = run_cli(["--resume", str(tmp_path / "b")])  # config, data position, m, v, RNG: from the checkpoint
    assert losses(first) + losses(resumed) == losses(straight)  # exactly, not approximately
    assert [h for h in resumed if "val_loss" in h] == [h for h in straight if "val_loss" in h and h["step"] >= 3]
    assert [c.step for c in list_checkpoints(tmp_path / "b")] == [3, 6]
    assert (tmp_path / "a" / "model_00000006.bin").read_bytes() == (tmp_path / "b" / "model_00000006.bin").read_bytes()


def test_checkpoint_round_trip_gives_the_same_next_step_loss(shards, tmp_path):
    model = MODELS["d2"]
    cfg = TrainConfig(model="d2", batch_size=2, seq_len=32, train_data=shards["train"])

    def step(engine, loader, n):
        engine.zero_grad()
        loss = engine.forward_backward(*loader.next_batch(), 1.0).item()
        engine.adamw_step(1e-3, n, 1.0, 0.9, 0.95, 1e-8, 0.1)
        return loss

    engine, loader = TorchEngine(model, init_parameters(model)), DataLoader(shards["train"], 2, 32)
    for n in (1, 2):
        step(engine, loader, n)
    save_checkpoint(tmp_path, 2, engine, loader, cfg)
    ckpt, model2, flat, state = load_checkpoint(tmp_path)
    assert ckpt.step == state["step"] == 2 and model2 == model and state["config"]["batch_size"] == 2
    restored = TorchEngine(model2, flat)
    restored.set_optimizer_state(state["optimizer"])
    loader2 = DataLoader(shards["train"], 2, 32)
    loader2.load_state(state["train_loader"])
    assert step(restored, loader2, 3) == step(engine, loader, 3)
    assert torch.equal(restored.get_parameters(), engine.get_parameters())


def test_weights_from_a_file_and_samples(shards, shared_vocab, tmp_path):
    run_cli(tiny_args(shards, tmp_path / "a", "--max-steps", "1"))
    run_cli(tiny_args(shards, tmp_path / "b", "--max-steps", "1", "--sample-every", "1",
            "--sample-tokens", "8", "--vocab", str(shared_vocab)))
    log = (tmp_path / "b" / "train.log").read_text()
    assert log.count("sample:") == 2
    run_cli(tiny_args(shards, tmp_path / "c", "--max-steps", "1", "--learning-rate", "0", "--init",
                      str(tmp_path / "a" / "model_00000001.bin"), model=None))
    assert torch.equal(read_llmc(tmp_path / "c" / "model_00000001.bin")[1],
                       read_llmc(tmp_path / "a" / "model_00000001.bin")[1])  # lr 0: unchanged weights


@pytest.mark.parametrize("argv,message", [
    (["--model", "d3"], "invalid choice"),
    (["--train-data", "/nonexistent/x_*.bin"], "python trainer/prepro.py tinyshakespeare"),
    (["--total-batch-size", "100"], "multiple of B*T"),
    (["--seq-len", "2048"], "T <= 1024"),
    (["--init", "/nonexistent/model.bin"], "no weight file"),
    (["--kernels", "/nonexistent/best.yaml"], "no kernels file"),
    (["--resume", "/nonexistent/run"], "no such folder"),
    (["--learning-rate", "fast"], "invalid float"),
    (["--beta2", "1.5"], "--beta2 1.5 is out of range"),
    (["--bogus-flag", "1"], "unrecognized arguments"),
])
def test_bad_input_exits_2_with_a_message_and_writes_nothing(shards, tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    model = None if "--init" in argv else "d2"
    assert exit_code(tiny_args(shards, out, "--max-steps", "1", model=model) + argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_kernels_on_the_cpu_say_they_need_a_gpu(shards, tmp_path, capsys):
    (tmp_path / "best.yaml").write_text("fp32: {}\n")
    argv = tiny_args(shards, tmp_path / "run", "--kernels", str(tmp_path / "best.yaml"))
    assert train.main(argv) == 2
    err = capsys.readouterr().err
    assert "--kernels needs a CUDA GPU" in err and "--device cpu" in err
    assert not (tmp_path / "run").exists()


def test_resume_of_an_empty_folder_and_changed_model(shards, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert train.main(["--resume", str(tmp_path / "empty")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    run_cli(tiny_args(shards, tmp_path / "run", "--max-steps", "1"))
    assert train.main(["--resume", str(tmp_path / "run"), "--model", "d4"]) == 2
    assert "cannot change" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message for a machine without a GPU")
def test_cuda_without_a_gpu(shards, tmp_path, capsys):
    assert train.main(tiny_args(shards, tmp_path, "--device", "cuda")) == 2
    assert "--device cpu" in capsys.readouterr().err


def script_env():
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def test_the_script_exits_2_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "trainer/train.py", "--device", "cpu", "--model", "d2",
                           "--train-data", str(tmp_path / "none.bin"), "--out-dir", str(tmp_path / "run")],
                          cwd=ROOT, capture_output=True, text=True, env=script_env(), timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: no data at") and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_ctrl_c_saves_a_checkpoint_then_exits(shards, tmp_path):
    proc = subprocess.Popen([sys.executable, "trainer/train.py", *tiny_args(shards, tmp_path, "--max-steps", "100000")],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=script_env())
    try:
        for line in proc.stdout:  # wait for the first step, then Ctrl-C
            if line.startswith("step"):
                proc.send_signal(signal.SIGINT)
                break
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in out and "--resume" in out
    [ckpt] = list_checkpoints(tmp_path)
    assert 1 <= ckpt.step < 100000


def test_the_run_summary_averages_all_steps_but_the_first():
    from trainer.logger import run_summary

    cpu = torch.device("cpu")
    line = run_summary([(1, 900.0), (2, 100.0), (3, 300.0)], tokens_per_step=1000, flops_per_step=4e12,
                       peak=100e12, device=cpu)
    # mean of 100 and 300 ms: 0.2 s a step, 5,000 tokens/s, 4e12 / 0.2 / 1e14 = 20% MFU
    assert line.startswith("summary: steps 2-3 (the first left out: warm-up) | 200.0 ms/step | 5,000 tok/s | "
                           "MFU 20.0% | peak process memory")
    assert "steps 7-7 | 50.0 ms/step | 20,000 tok/s | MFU n/a" in run_summary([(7, 50.0)], 1000, 1.0, None, cpu)
    assert run_summary([], 1000, 1.0, None, cpu).startswith("summary: no step run")
