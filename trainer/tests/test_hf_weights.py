"""Hugging Face GPT-2 weights for real: a tiny random transformers.GPT2LMHeadModel, saved every way Hugging
Face tools save one, loads with trainer/weights.py, and reference/gpt2.py (directly, and through the
TorchEngine) then gives HF's logits, loss and gradients. Skipped without transformers and safetensors."""
import json

import pytest
import torch
import torch.nn.functional as F

from harness.errors import UserError
from reference import gpt2
from trainer import train
from trainer.config import GPTConfig
from trainer.engine import TorchEngine
from trainer.model import parameter_views
from trainer.weights import from_hf_state_dict, load_weights, read_llmc, to_hf_state_dict

from .conftest import tiny_args

transformers = pytest.importorskip("transformers", reason="needs transformers (pip install -r requirements.txt)")
safetensors_torch = pytest.importorskip("safetensors.torch",
                                        reason="needs safetensors (pip install -r requirements.txt)")

# GPT2Config arguments -> the GPTConfig the loader must infer from the saved weights
SHAPES = {
    # d2's shape with GPT-2's real vocabulary: padded from 50,257 to 50,304 rows
    "d2": (dict(n_layer=2, n_embd=64, n_head=4, n_positions=64, vocab_size=50257),
           GPTConfig(num_layers=2, num_heads=4, channels=64, max_seq_len=64)),
    # nothing a GPT-2 size: 3 heads of 8 channels, 100 tokens padded to 128
    "odd": (dict(n_layer=3, n_embd=24, n_head=3, n_positions=40, vocab_size=100, bos_token_id=99, eos_token_id=99),
            GPTConfig(num_layers=3, num_heads=3, channels=24, max_seq_len=40, vocab_size=100, padded_vocab_size=128)),
}
B, T = 2, 16


def hf_model(shape: str, seed: int = 0):
    """A GPT2LMHeadModel in eval mode (no dropout) whose every parameter is random: HF's init leaves the
    biases at 0 and the layernorm weights at 1, which would hide a mix-up among them."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**SHAPES[shape][0])).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():  # lm_head.weight is wte's Parameter: perturbed once, still tied
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    assert model.lm_head.weight is model.transformer.wte.weight
    return model


def batch(cfg: GPTConfig, seed: int = 1):
    """tokens (B, T) and targets (B, T): one sequence of T + 1 random ids, shifted by one."""
    x = torch.randint(0, cfg.vocab_size, (B, T + 1), generator=torch.Generator().manual_seed(seed))
    return x[:, :T], x[:, 1:]


def hf_loss(model, tokens, targets):
    """HF's own loss: given labels, GPT2LMHeadModel shifts them by one itself."""
    x = torch.cat([tokens, targets[:, -1:]], dim=1)
    with torch.no_grad():
        return model(x, labels=x).loss.item()


def save_torch(model, folder):
    """torch.save of the state dict, as HF's pytorch_model.bin: lm_head.weight present, sharing wte's storage."""
    folder.mkdir()
    sd = model.state_dict()
    assert "lm_head.weight" in sd and sd["lm_head.weight"].data_ptr() == sd["transformer.wte.weight"].data_ptr()
    torch.save(sd, folder / "pytorch_model.bin")
    model.config.to_json_file(folder / "config.json")
    return folder / "pytorch_model.bin", {}


def save_torch_without_lm_head(model, folder):
    """A torch file without lm_head.weight and without a config.json: the head count is given."""
    folder.mkdir()
    sd = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    torch.save(sd, folder / "weights.pt")
    return folder / "weights.pt", {"num_heads": model.config.n_head}


def save_gpt2model_with_mask_buffers(model, folder):
    """GPT2Model's names (no "transformer." prefix, no lm_head) plus the causal-mask buffers older
    transformers versions saved, as in the original gpt2 pytorch_model.bin."""
    folder.mkdir()
    maxT = model.config.n_positions
    sd = dict(model.transformer.state_dict())
    assert not any(k.startswith("transformer.") or k.startswith("lm_head") for k in sd)
    for l in range(model.config.n_layer):
        sd[f"h.{l}.attn.bias"] = torch.tril(torch.ones(maxT, maxT, dtype=torch.uint8)).view(1, 1, maxT, maxT)
        sd[f"h.{l}.attn.masked_bias"] = torch.tensor(-1e4)
    torch.save(sd, folder / "pytorch_model.bin")
    model.config.to_json_file(folder / "config.json")
    return folder / "pytorch_model.bin", {}


def save_pretrained_file(model, folder):
    """save_pretrained's model.safetensors, named as a file: it drops the tied lm_head.weight."""
    model.save_pretrained(folder)
    with safetensors_torch.safe_open(folder / "model.safetensors", "pt") as f:
        assert "lm_head.weight" not in f.keys() and "transformer.wte.weight" in f.keys()
    return folder / "model.safetensors", {}


def save_pretrained_folder(model, folder):
    model.save_pretrained(folder)
    return folder, {}


def save_pretrained_sharded(model, folder):
    """save_pretrained with small shards: model-0000N-of-0000M.safetensors and model.safetensors.index.json."""
    model.save_pretrained(folder, max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").is_file() and not (folder / "model.safetensors").exists()
    assert len(list(folder.glob("model-*.safetensors"))) > 2
    return folder, {}


def save_safetensors_save_model(model, folder):
    """safetensors.torch.save_model, the way to save tied tensors: it keeps lm_head.weight, drops wte."""
    folder.mkdir()
    safetensors_torch.save_model(model, str(folder / "gpt2.safetensors"))
    with safetensors_torch.safe_open(folder / "gpt2.safetensors", "pt") as f:
        assert "lm_head.weight" in f.keys() and "transformer.wte.weight" not in f.keys()
    model.config.to_json_file(folder / "config.json")
    return folder / "gpt2.safetensors", {}


def save_torch_in_a_folder(model, folder):
    """A folder holding pytorch_model.bin (no safetensors), as older save_pretrained versions wrote."""
    save_torch(model, folder)
    return folder, {}


SAVERS = {f.__name__.removeprefix("save_"): f for f in (
    save_torch, save_torch_without_lm_head, save_gpt2model_with_mask_buffers, save_pretrained_file,
    save_pretrained_folder, save_pretrained_sharded, save_safetensors_save_model, save_torch_in_a_folder)}


@pytest.fixture(params=list(SHAPES))
def shape(request):
    return request.param


@pytest.mark.parametrize("saver", list(SAVERS))
def test_every_way_hf_saves_gpt2_loads_the_same_parameters(shape, saver, tmp_path):
    model = hf_model(shape)
    path, kwargs = SAVERS[saver](model, tmp_path / "saved")
    cfg, flat = load_weights(path, **kwargs)
    assert cfg == SHAPES[shape][1]
    # the inverse mapping gives back HF's own state dict, every key, bit for bit (lm_head.weight included)
    ours, theirs = to_hf_state_dict(flat, cfg), model.state_dict()
    assert set(ours) == set(theirs)
    for name, t in theirs.items():
        assert torch.equal(ours[name], t), name
    assert (parameter_views(flat, cfg)["wte"][cfg.vocab_size:] == 0).all()  # the padding rows


def test_logits_and_loss_match_hf_in_float64(shape, tmp_path):
    model = hf_model(shape)
    cfg, flat = load_weights(SAVERS["pretrained_folder"](model, tmp_path / "saved")[0])
    tokens, targets = batch(cfg)
    V = cfg.vocab_size
    model.double()
    with torch.no_grad():
        expected = model(tokens).logits
        logits, loss = gpt2.forward(parameter_views(flat.double(), cfg), tokens, cfg.num_heads, targets, V)
    assert expected.dtype == logits.dtype == torch.float64 and expected.shape == (B, T, V)
    assert expected.std() > 0.2  # logits far from zero: the tolerance below means something
    torch.testing.assert_close(logits[..., :V], expected, rtol=1e-12, atol=1e-12)
    assert (logits[..., V:] == 0).all()  # the padding rows of wte give zero logits
    assert loss.item() == pytest.approx(F.cross_entropy(expected.reshape(-1, V), targets.reshape(-1)).item(),
                                        rel=1e-12)
    assert loss.item() == pytest.approx(hf_loss(model, tokens, targets), rel=5e-6)  # HF takes the loss in fp32


def test_gradients_match_hf_in_float64(shape, tmp_path):
    model = hf_model(shape)
    cfg, flat = load_weights(SAVERS["pretrained_file"](model, tmp_path / "saved")[0])
    tokens, targets = batch(cfg, seed=2)
    model.double()
    F.cross_entropy(model(tokens).logits.reshape(-1, cfg.vocab_size), targets.reshape(-1)).backward()
    # tied: named_parameters() yields wte once, its gradient the sum of the embedding's and lm_head's
    hf_grads = {name: p.grad for name, p in model.named_parameters()}
    assert "lm_head.weight" not in hf_grads
    _, expected = from_hf_state_dict(hf_grads, num_heads=cfg.num_heads)  # our layout (fp32)
    flat64 = flat.double().requires_grad_()
    _, loss = gpt2.forward(parameter_views(flat64, cfg), tokens, cfg.num_heads, targets, cfg.vocab_size)
    loss.backward()
    assert expected.abs().max() > 0.01
    torch.testing.assert_close(flat64.grad.float(), expected, rtol=1e-6, atol=1e-12)


def test_the_torch_engine_matches_hf_in_fp32(shape, tmp_path):
    model = hf_model(shape)
    cfg, flat = load_weights(SAVERS["torch"](model, tmp_path / "saved")[0])
    tokens, targets = batch(cfg, seed=3)
    engine = TorchEngine(cfg, flat, device="cpu", dtype="fp32")
    with torch.no_grad():
        expected = model(tokens).logits
    torch.testing.assert_close(engine.logits(tokens), expected, rtol=1e-5, atol=1e-5)
    assert engine.evaluate(tokens, targets) == pytest.approx(hf_loss(model, tokens, targets), rel=5e-6)


def test_train_py_starts_from_a_save_pretrained_folder(shards, tmp_path):
    """--init FOLDER: the run's model is HF's (lr 0 keeps it, so the checkpoint written is HF's weights)."""
    model = hf_model("d2")  # GPT-2's vocabulary: the shards' token ids need it
    model.save_pretrained(tmp_path / "hf")
    cfg, loaded = train.parse_args(tiny_args(shards, tmp_path / "run", "--max-steps", "1", "--learning-rate", "0",
                                             "--init", str(tmp_path / "hf"), model=None))
    history = train.run(cfg, loaded, quiet=True)
    assert any("loss" in h for h in history)
    cfg, flat = read_llmc(tmp_path / "run" / "model_00000001.bin")
    assert cfg == SHAPES["d2"][1]
    for name, t in model.state_dict().items():
        assert torch.equal(to_hf_state_dict(flat, cfg)[name], t), name


# --- what is refused, and how ---------------------------------------------------------------------

def _linear_layout(sd):
    sd["transformer.h.0.attn.c_attn.weight"] = sd["transformer.h.0.attn.c_attn.weight"].t().contiguous()


def _narrow_wpe(sd):
    sd["transformer.wpe.weight"] = sd["transformer.wpe.weight"][:, :-1].clone()


def _untie(sd):
    sd["lm_head.weight"] = sd["transformer.wte.weight"] + 1


def _wide_lm_head(sd):
    sd["lm_head.weight"] = torch.cat([sd["transformer.wte.weight"], torch.zeros(28, 24)])


def _drop(name):
    return lambda sd: sd.pop(name)


@pytest.mark.parametrize("corrupt,message", [
    (_drop("transformer.h.1.mlp.c_proj.bias"), r"missing \['h\.1\.mlp\.c_proj\.bias'\]"),
    (_drop("transformer.h.0.ln_1.weight"), r"missing \['h\.0\.ln_1\.weight'\]"),
    (_drop("transformer.h.2.ln_1.weight"), r"missing \['h\.2\.ln_1\.weight'\]"),
    (_drop("transformer.wpe.weight"), "no wpe.weight"),
    (lambda sd: sd.update({"transformer.h.0.attn.q_proj.weight": torch.zeros(24, 24)}),
     r"unknown \['h\.0\.attn\.q_proj\.weight'\]"),
    # nn.Linear's (out, in) where HF's Conv1D stores (in, out): the shapes as the file has them
    (_linear_layout, r"h\.0\.attn\.c_attn\.weight has shape \(72, 24\), expected \(24, 72\)"),
    (_narrow_wpe, r"wpe\.weight has shape \(40, 23\), expected \(40, 24\)"),
    (_untie, "lm_head.weight differs from wte .*ties them"),
    (_wide_lm_head, r"lm_head.weight differs from wte \(shapes \(128, 24\) and \(100, 24\)\)"),
    (lambda sd: sd.update({"transformer.h.0.attn.bias": "causal"}), "is not a tensor"),
], ids=["missing-bias", "missing-first-ln", "missing-last-ln", "missing-wpe", "unknown-key", "linear-layout",
        "narrow-wpe", "untied", "wide-lm-head", "not-a-tensor"])
def test_a_bad_state_dict_is_a_user_error_naming_the_key(corrupt, message, tmp_path):
    model = hf_model("odd")
    sd = dict(model.state_dict())
    corrupt(sd)
    torch.save(sd, tmp_path / "pytorch_model.bin")
    model.config.to_json_file(tmp_path / "config.json")
    with pytest.raises(UserError, match=message):
        load_weights(tmp_path / "pytorch_model.bin")
    with pytest.raises(UserError, match=message):
        from_hf_state_dict(sd, num_heads=3)  # the same without a file


def test_a_bad_safetensors_file_is_a_user_error(tmp_path):
    sd = {k: v for k, v in hf_model("odd").state_dict().items() if k != "lm_head.weight"}
    sd["transformer.h.0.mlp.c_fc.weight"] = sd["transformer.h.0.mlp.c_fc.weight"].t().contiguous()
    safetensors_torch.save_file(sd, str(tmp_path / "model.safetensors"))
    with pytest.raises(UserError, match=r"h\.0\.mlp\.c_fc\.weight has shape \(96, 24\), expected \(24, 96\)"):
        load_weights(tmp_path / "model.safetensors", num_heads=3)
    (tmp_path / "junk.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(UserError, match="not a readable safetensors file"):
        load_weights(tmp_path / "junk.safetensors")


@pytest.mark.parametrize("setting,value", [("activation_function", "gelu"), ("layer_norm_epsilon", 1e-6),
                                           ("scale_attn_by_inverse_layer_idx", True),
                                           ("scale_attn_weights", False), ("tie_word_embeddings", False)])
def test_a_config_the_reference_model_does_not_compute_is_refused(setting, value, tmp_path):
    """Loading these silently would give a model that is not the one saved."""
    model = hf_model("odd")
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config[setting] = value
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match=f"config.json has {setting}={value!r}"):
        load_weights(tmp_path)


def test_bad_folders_and_configs_are_user_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="folder without GPT-2 weights: expected one of model.safetensors"):
        load_weights(tmp_path / "empty")
    model = hf_model("odd")
    model.save_pretrained(tmp_path / "sharded", max_shard_size="20KB")
    next((tmp_path / "sharded").glob("model-00002-*.safetensors")).unlink()
    with pytest.raises(UserError, match="names the shard 'model-00002-of-.*not a file"):
        load_weights(tmp_path / "sharded")
    model.save_pretrained(tmp_path / "heads")
    config = json.loads((tmp_path / "heads" / "config.json").read_text())
    (tmp_path / "heads" / "config.json").write_text(json.dumps(dict(config, n_head=5)))
    with pytest.raises(UserError, match=r"channels \(24\) must be a multiple of num_heads \(5\)"):
        load_weights(tmp_path / "heads")
    (tmp_path / "heads" / "config.json").write_text("{'n_head': 3")
    with pytest.raises(UserError, match="config.json: cannot read it as JSON"):
        load_weights(tmp_path / "heads")
