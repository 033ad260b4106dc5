"""The flat parameter layout, GPT-2's initialisation, llm.c checkpoints and Hugging Face state dicts."""
import json
import math
import sys

import numpy as np
import pytest
import torch

from harness.errors import UserError
from trainer.config import MODELS, GPTConfig
from trainer.model import init_parameters, num_parameters, parameter_views
from trainer.weights import from_hf_state_dict, load_weights, read_llmc, to_hf_state_dict, write_llmc

D2 = MODELS["d2"]
# a non-standard small model: nothing in the formats may assume GPT-2's sizes
ODD = GPTConfig(num_layers=3, num_heads=3, channels=24, max_seq_len=40, vocab_size=100, padded_vocab_size=128)


@pytest.fixture(params=[D2, ODD], ids=["d2", "odd"])
def model(request):
    return request.param


def test_d12_has_gpt2_smalls_parameter_count():
    assert num_parameters(MODELS["d12"]) == 124_475_904  # llm.c's count (wte padded to 50304 rows)


def test_views_are_the_flat_buffer_in_llmc_order(model):
    flat = torch.arange(num_parameters(model), dtype=torch.float32)
    views = parameter_views(flat, model)
    assert list(views) == ["wte", "wpe", "ln1w", "ln1b", "qkvw", "qkvb", "attprojw", "attprojb", "ln2w", "ln2b",
                           "fcw", "fcb", "fcprojw", "fcprojb", "lnfw", "lnfb"]
    assert views["wte"][0, 0] == 0 and views["lnfb"][-1] == flat[-1]
    assert views["qkvw"].shape == (model.num_layers, 3 * model.channels, model.channels)
    views["wpe"].fill_(-1)
    assert (flat[model.padded_vocab_size * model.channels:][:model.max_seq_len * model.channels] == -1).all()


def test_init_is_gpt2s():
    cfg = MODELS["d4"]
    p = parameter_views(init_parameters(cfg, seed=0), cfg)
    assert p["wte"][:cfg.vocab_size].std().item() == pytest.approx(0.02, rel=0.02)
    assert (p["wte"][cfg.vocab_size:] == 0).all()  # padding rows
    assert p["qkvw"].std().item() == pytest.approx(0.02, rel=0.02)
    assert p["fcprojw"].std().item() == pytest.approx(0.02 / math.sqrt(2 * cfg.num_layers), rel=0.02)
    assert p["attprojw"].std().item() == pytest.approx(0.02 / math.sqrt(2 * cfg.num_layers), rel=0.02)
    for name in ("ln1w", "ln2w", "lnfw"):
        assert (p[name] == 1).all()
    for name in ("ln1b", "ln2b", "lnfb", "qkvb", "attprojb", "fcb", "fcprojb"):
        assert (p[name] == 0).all()
    assert torch.equal(init_parameters(cfg, seed=0), init_parameters(cfg, seed=0))


def test_llmc_fp32_round_trip_is_exact(model, tmp_path):
    flat = init_parameters(model, seed=1) + 0.001  # every value non-trivial
    write_llmc(tmp_path / "m.bin", flat, model)
    cfg, back = read_llmc(tmp_path / "m.bin")
    assert cfg == model and torch.equal(back, flat)
    header = np.fromfile(tmp_path / "m.bin", dtype="<i4", count=256)
    assert list(header[:8]) == [20240326, 3, model.max_seq_len, model.vocab_size, model.num_layers,
                                model.num_heads, model.channels, model.padded_vocab_size]
    assert (tmp_path / "m.bin").stat().st_size == 1024 + 4 * num_parameters(model)


def test_llmc_bf16_round_trip(model, tmp_path):
    flat = init_parameters(model, seed=2) + 0.001
    write_llmc(tmp_path / "m.bin", flat, model, dtype="bf16")
    cfg, back = read_llmc(tmp_path / "m.bin")
    assert cfg == model
    assert np.fromfile(tmp_path / "m.bin", dtype="<i4", count=2)[1] == 5
    assert (tmp_path / "m.bin").stat().st_size == 1024 + 2 * num_parameters(model)
    assert back.dtype == torch.float32 and torch.equal(back, flat.to(torch.bfloat16).float())
    write_llmc(tmp_path / "again.bin", back, model, dtype="bf16")  # bf16 values survive exactly
    assert (tmp_path / "again.bin").read_bytes() == (tmp_path / "m.bin").read_bytes()


def test_llmc_rejects_foreign_and_truncated_files(tmp_path):
    write_llmc(tmp_path / "m.bin", init_parameters(D2), D2)
    data = (tmp_path / "m.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(data[:-4])
    with pytest.raises(UserError, match="truncated"):
        read_llmc(tmp_path / "short.bin")
    (tmp_path / "v2.bin").write_bytes(data[:4] + (2).to_bytes(4, "little") + data[8:])
    with pytest.raises(UserError, match="version 2"):
        read_llmc(tmp_path / "v2.bin")
    (tmp_path / "junk.bin").write_bytes(b"\0" * 2048)
    with pytest.raises(UserError, match="magic"):
        read_llmc(tmp_path / "junk.bin")
    with pytest.raises(UserError, match="no weight file"):
        load_weights(tmp_path / "missing.bin")


def test_write_is_atomic_on_failure(tmp_path):
    with pytest.raises(ValueError):
        write_llmc(tmp_path / "m.bin", torch.zeros(10), D2)
    assert list(tmp_path.iterdir()) == []


def test_hf_names_and_layouts(model):
    flat = init_parameters(model, seed=3)
    p = parameter_views(flat, model)
    sd = to_hf_state_dict(flat, model)
    C = model.channels
    assert sd["transformer.wte.weight"].shape == (model.vocab_size, C)  # unpadded
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (C, 3 * C)  # Conv1D: (in, out)
    assert torch.equal(sd["transformer.h.1.mlp.c_fc.weight"], p["fcw"][1].t())
    assert torch.equal(sd["transformer.h.1.mlp.c_proj.weight"], p["fcprojw"][1].t())
    assert torch.equal(sd["lm_head.weight"], sd["transformer.wte.weight"])


def test_hf_round_trip_through_a_torch_file(model, tmp_path):
    flat = init_parameters(model, seed=4) + 0.001
    parameter_views(flat, model)["wte"][model.vocab_size:] = 0  # HF has no padding rows: they come back zero
    sd = to_hf_state_dict(flat, model)
    sd["transformer.h.0.attn.bias"] = torch.ones(1, 1, 4, 4)  # the causal-mask buffer some dicts carry
    torch.save(sd, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text(json.dumps({"n_head": model.num_heads}))
    cfg, back = load_weights(tmp_path / "pytorch_model.bin")
    assert cfg == model and torch.equal(back, flat)


def test_hf_gpt2_head_count_is_inferred_from_the_width():
    cfg = GPTConfig(num_layers=1, num_heads=12, channels=768, max_seq_len=8, vocab_size=10, padded_vocab_size=128)
    sd = to_hf_state_dict(torch.zeros(num_parameters(cfg)), cfg)
    assert from_hf_state_dict(sd)[0] == cfg
    sd_model_only = {k.removeprefix("transformer."): v for k, v in sd.items() if k != "lm_head.weight"}
    assert from_hf_state_dict(sd_model_only)[0] == cfg  # GPT2Model names (no "transformer." prefix)


def test_hf_bad_state_dicts_say_what_is_wrong(tmp_path):
    sd = to_hf_state_dict(init_parameters(D2), D2)
    with pytest.raises(UserError, match="heads"):
        from_hf_state_dict(sd)  # C=64 is no GPT-2 size and no config.json says n_head
    extra = dict(sd, **{"transformer.h.0.attn.q_proj.weight": torch.zeros(1)})
    with pytest.raises(UserError, match="unknown"):
        from_hf_state_dict(extra, num_heads=4)
    del sd["transformer.h.1.ln_2.bias"]
    with pytest.raises(UserError, match="missing"):
        from_hf_state_dict(sd, num_heads=4)
    untied = to_hf_state_dict(init_parameters(D2), D2)
    untied["lm_head.weight"] = untied["lm_head.weight"] + 1
    torch.save(untied, tmp_path / "untied.pt")
    with pytest.raises(UserError, match="ties"):
        load_weights(tmp_path / "untied.pt")
    (tmp_path / "text.bin").write_text("not weights")
    with pytest.raises(UserError, match="neither"):
        load_weights(tmp_path / "text.bin")


def test_safetensors_without_the_package_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "safetensors", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    (tmp_path / "model.safetensors").write_bytes(b"12345678")
    with pytest.raises(UserError, match="pip install safetensors"):
        load_weights(tmp_path / "model.safetensors")
