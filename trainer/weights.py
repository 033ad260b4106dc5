"""Weight files: llm.c's checkpoint format (read and written) and Hugging Face GPT-2 state dicts (read).

llm.c format: a header of 256 int32 (magic 20240326, version, maxT, V, L, NH, C, Vp, then zeros),
then the parameters in model.PARAMETER_NAMES order as one flat array: fp32 for version 3, bf16 for
version 5. llm.c's train_gpt2.cu and this trainer read each other's files.

Hugging Face GPT2LMHeadModel: names like transformer.h.0.attn.c_attn.weight; its Conv1D weights are
(in, out), the transpose of ours; lm_head is tied to wte, which we pad from V to Vp rows with zeros.
Read from a torch file (.bin/.pt), a .safetensors file, a sharded checkpoint's *.index.json, or the
folder save_pretrained writes (its config.json gives the head count and is checked for settings
reference/gpt2.py does not model).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from harness.errors import UserError
from harness.atomic import atomic_write
from trainer.config import GPT2_HEADS_BY_CHANNELS, GPTConfig
from trainer.model import PARAMETER_NAMES, num_parameters, parameter_views

MODEL_MAGIC = 20240326
VERSION_FP32 = 3
VERSION_BF16 = 5
HEADER_INTS = 256


# --- llm.c format ---------------------------------------------------------------------------------

def write_llmc(path, flat: torch.Tensor, cfg: GPTConfig, dtype: str = "fp32") -> None:
    """Write `flat` (fp32) as an llm.c checkpoint; dtype "bf16" rounds to bf16 (version 5)."""
    if dtype not in ("fp32", "bf16"):
        raise ValueError(f"dtype must be fp32 or bf16, not {dtype!r}")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:8] = [MODEL_MAGIC, VERSION_FP32 if dtype == "fp32" else VERSION_BF16, cfg.max_seq_len,
                  cfg.vocab_size, cfg.num_layers, cfg.num_heads, cfg.channels, cfg.padded_vocab_size]
    flat = flat.detach().to("cpu", torch.float32).contiguous()
    if flat.numel() != num_parameters(cfg):
        raise ValueError(f"{flat.numel()} parameters, but {cfg} has {num_parameters(cfg)}")
    if dtype == "bf16":
        data = flat.to(torch.bfloat16).view(torch.int16).numpy()  # round to nearest even, raw bits
    else:
        data = flat.numpy()
    with atomic_write(path) as f:
        f.write(header.tobytes())
        f.write(memoryview(data).cast("B"))


def read_llmc_header(path) -> tuple[GPTConfig, int]:
    """(model config, version) from an llm.c checkpoint's header."""
    path = Path(path)
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(HEADER_INTS * 4), dtype="<i4")
    if header.size < 8 or header[0] != MODEL_MAGIC:
        raise UserError(f"{path} is not an llm.c model checkpoint (bad magic number)")
    version = int(header[1])
    if version not in (VERSION_FP32, VERSION_BF16):
        raise UserError(f"{path}: llm.c checkpoint version {version} is not supported "
                        f"(3 = fp32 and 5 = bf16 are); re-export it with llm.c's train_gpt2.py")
    maxT, V, L, NH, C, Vp = (int(x) for x in header[2:8])
    try:
        cfg = GPTConfig(num_layers=L, num_heads=NH, channels=C, max_seq_len=maxT, vocab_size=V,
                        padded_vocab_size=Vp)
    except ValueError as e:
        raise UserError(f"{path}: bad header: {e}") from None
    return cfg, version


def read_llmc(path) -> tuple[GPTConfig, torch.Tensor]:
    """(model config, flat fp32 parameters) from an llm.c checkpoint (version 3 or 5)."""
    path = Path(path)
    cfg, version = read_llmc_header(path)
    n = num_parameters(cfg)
    itemsize = 4 if version == VERSION_FP32 else 2
    expected = HEADER_INTS * 4 + n * itemsize
    if path.stat().st_size != expected:
        raise UserError(f"{path}: {path.stat().st_size} bytes, but its header describes {expected} "
                        f"(a truncated or foreign file)")
    with open(path, "rb") as f:
        f.seek(HEADER_INTS * 4)
        if version == VERSION_FP32:
            flat = torch.from_numpy(np.fromfile(f, dtype="<f4", count=n))
        else:
            bits = np.fromfile(f, dtype="<i2", count=n)
            flat = torch.from_numpy(bits).view(torch.bfloat16).float()
    return cfg, flat


# --- Hugging Face state dicts -------------------------------------------------------------------

# our per-layer name -> (name inside transformer.h.{l}., whether HF stores it transposed (Conv1D))
HF_BLOCK = {
    "ln1w": ("ln_1.weight", False), "ln1b": ("ln_1.bias", False),
    "qkvw": ("attn.c_attn.weight", True), "qkvb": ("attn.c_attn.bias", False),
    "attprojw": ("attn.c_proj.weight", True), "attprojb": ("attn.c_proj.bias", False),
    "ln2w": ("ln_2.weight", False), "ln2b": ("ln_2.bias", False),
    "fcw": ("mlp.c_fc.weight", True), "fcb": ("mlp.c_fc.bias", False),
    "fcprojw": ("mlp.c_proj.weight", True), "fcprojb": ("mlp.c_proj.bias", False),
}
HF_TOP = {"wte": "wte.weight", "wpe": "wpe.weight", "lnfw": "ln_f.weight", "lnfb": "ln_f.bias"}
# buffers some GPT-2 state dicts carry (the causal mask), not parameters
HF_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def to_hf_state_dict(flat: torch.Tensor, cfg: GPTConfig) -> dict[str, torch.Tensor]:
    """Our parameters under GPT2LMHeadModel's names and layouts (the inverse of from_hf_state_dict)."""
    p = parameter_views(flat.detach().float().cpu(), cfg)
    sd = {}
    for ours, name in HF_TOP.items():
        t = p[ours][:cfg.vocab_size] if ours == "wte" else p[ours]
        sd[f"transformer.{name}"] = t.clone()
    for l in range(cfg.num_layers):
        for ours, (name, transposed) in HF_BLOCK.items():
            t = p[ours][l]
            sd[f"transformer.h.{l}.{name}"] = (t.t() if transposed else t).contiguous().clone()
    sd["lm_head.weight"] = sd["transformer.wte.weight"]  # tied
    return sd


def from_hf_state_dict(sd: dict, num_heads: int | None = None, padded_vocab_size: int | None = None,
                       where: str = "state dict") -> tuple[GPTConfig, torch.Tensor]:
    """(model config, flat fp32 parameters) from a GPT2LMHeadModel (or GPT2Model) state dict.

    lm_head.weight may be absent (save_pretrained drops the tied copy), the only copy (safetensors'
    save_model keeps lm_head.weight and drops wte), or beside wte, which it must then equal, since
    this model ties them. The causal-mask buffers (attn.bias, attn.masked_bias) are ignored."""
    not_tensors = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise UserError(f"{where}: not a state dict: {', '.join(map(str, not_tensors[:5]))} "
                        f"{'is not a tensor' if len(not_tensors) == 1 else 'are not tensors'}")
    lm_head = sd.get("lm_head.weight")
    sd = {k.removeprefix("transformer."): v for k, v in sd.items()
          if k != "lm_head.weight" and not k.endswith(HF_IGNORED_SUFFIXES)}
    if "wte.weight" not in sd and lm_head is not None:
        sd["wte.weight"] = lm_head  # safetensors' save_model keeps one name of a tied pair: lm_head's
    for name in ("wte.weight", "wpe.weight"):
        if name not in sd:
            raise UserError(f"{where}: no {name}; is this a GPT-2 state dict? (keys: {', '.join(list(sd)[:5])}, ...)")
        if sd[name].dim() != 2:
            raise UserError(f"{where}: {name} has shape {tuple(sd[name].shape)}, expected a matrix")
    if lm_head is not None and not (lm_head.shape == sd["wte.weight"].shape and torch.equal(lm_head, sd["wte.weight"])):
        raise UserError(f"{where}: lm_head.weight differs from wte (shapes {tuple(lm_head.shape)} and "
                        f"{tuple(sd['wte.weight'].shape)}); GPT-2 ties them, and so does this trainer")
    V, C = sd["wte.weight"].shape
    maxT = sd["wpe.weight"].shape[0]
    layers = [int(m.group(1)) for m in map(re.compile(r"h\.(\d+)\.").match, sd) if m]
    L = max(layers, default=-1) + 1  # a layer with a tensor missing is reported as missing below
    if num_heads is None:
        if C not in GPT2_HEADS_BY_CHANNELS:
            raise UserError(f"{where}: cannot tell the number of heads of a model with C={C}; "
                            f"put its config.json (with n_head) beside the file")
        num_heads = GPT2_HEADS_BY_CHANNELS[C]
    Vp = padded_vocab_size or -(-V // 128) * 128
    try:
        cfg = GPTConfig(num_layers=L, num_heads=num_heads, channels=C, max_seq_len=maxT, vocab_size=V,
                        padded_vocab_size=Vp)
    except ValueError as e:
        raise UserError(f"{where}: {e}") from None
    expected = {f"h.{l}.{name}" for l in range(L) for name, _ in HF_BLOCK.values()} | set(HF_TOP.values())
    missing, unknown = expected - set(sd), set(sd) - expected
    if missing or unknown:
        raise UserError(f"{where}: not a GPT-2 state dict: missing {sorted(missing)[:5]}, unknown {sorted(unknown)[:5]}")

    flat = torch.zeros(num_parameters(cfg), dtype=torch.float32)
    p = parameter_views(flat, cfg)
    for ours in PARAMETER_NAMES:
        if ours in HF_TOP:
            target = p[ours][:V] if ours == "wte" else p[ours]  # wte's padding rows stay zero
            _copy(target, sd[HF_TOP[ours]], False, where, HF_TOP[ours])
        else:
            name, transposed = HF_BLOCK[ours]
            for l in range(L):
                _copy(p[ours][l], sd[f"h.{l}.{name}"], transposed, where, f"h.{l}.{name}")
    return cfg, flat


def _copy(target, src, transposed, where, name):
    """target <- src (src.t() for HF's Conv1D weights); shapes are reported as HF stores them."""
    expected = tuple(target.t().shape) if transposed else tuple(target.shape)
    if tuple(src.shape) != expected:
        raise UserError(f"{where}: {name} has shape {tuple(src.shape)}, expected {expected}")
    target.copy_(src.t() if transposed else src)  # any float dtype: copy_ converts to fp32


# the files save_pretrained writes, in the order a folder is searched
HF_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                   "pytorch_model.bin.index.json")
# config.json settings of GPT-2 that reference/gpt2.py hard-codes: name -> (value when absent, allowed values)
HF_FIXED_SETTINGS = {
    "activation_function": ("gelu_new", ("gelu_new", "gelu_pytorch_tanh")),  # both are the tanh approximation
    "layer_norm_epsilon": (1e-5, (1e-5,)),
    "scale_attn_weights": (True, (True,)),
    "scale_attn_by_inverse_layer_idx": (False, (False,)),
    "tie_word_embeddings": (True, (True,)),
}


def _read_json(path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read it as JSON ({e})") from None


def _check_hf_config(config, where) -> None:
    """Refuse a config.json describing a model that reference/gpt2.py would compute differently."""
    if not isinstance(config, dict):
        raise UserError(f"{where}: config.json is not a JSON object")
    bad = [f"{name}={config[name]!r}" for name, (_, allowed) in HF_FIXED_SETTINGS.items()
           if name in config and config[name] not in allowed]
    if bad:
        raise UserError(f"{where}: config.json has {', '.join(bad)}; this trainer's GPT-2 supports only "
                        + ", ".join(f"{name}={default!r}" for name, (default, _) in HF_FIXED_SETTINGS.items()))


def _read_one_state_dict(path: Path) -> dict:
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise UserError(f"{path}: reading .safetensors needs the safetensors package: "
                            f"pip install safetensors") from None
        try:
            return load_file(str(path))
        except Exception as e:  # safetensors raises its own error type for a malformed file
            raise UserError(f"{path} is not a readable safetensors file ({e})") from None
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise UserError(f"{path} is neither an llm.c checkpoint nor a torch state dict ({e})") from None
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise UserError(f"{path} holds a {type(sd).__name__}, not a state dict")
    return sd


def _read_sharded_state_dict(index_path: Path) -> dict:
    """A sharded checkpoint: its index's weight_map names the shard file of every tensor."""
    index = _read_json(index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise UserError(f"{index_path}: no weight_map; not a sharded checkpoint's index")
    sd = {}
    for shard in sorted(set(weight_map.values())):
        shard_path = index_path.with_name(str(shard))
        if Path(str(shard)).name != str(shard) or not shard_path.is_file():
            raise UserError(f"{index_path} names the shard {shard!r}, which is not a file beside it")
        part = _read_one_state_dict(shard_path)
        sd.update({k: v for k, v in part.items() if weight_map.get(k) == shard})
    missing = sorted(set(weight_map) - set(sd))
    if missing:
        raise UserError(f"{index_path}: the shards lack {missing[:5]}, which the index lists")
    return sd


def read_hf(path, num_heads: int | None = None) -> tuple[GPTConfig, torch.Tensor]:
    """A Hugging Face GPT-2 state dict: a torch .bin/.pt file, a .safetensors file, a sharded
    checkpoint's *.index.json, or a save_pretrained folder (see HF_WEIGHT_FILES)."""
    path = Path(path)
    if path.is_dir():
        path = _hf_weights_in(path)
    if path.name.endswith(".index.json"):
        sd = _read_sharded_state_dict(path)
    else:
        sd = _read_one_state_dict(path)
    config_json = path.with_name("config.json")
    if config_json.exists():
        config = _read_json(config_json)
        _check_hf_config(config, str(path))
        if num_heads is None:
            num_heads = config.get("n_head")
    return from_hf_state_dict(sd, num_heads=num_heads, where=str(path))


def _hf_weights_in(folder) -> Path:
    """The weight file of a save_pretrained folder (the first of HF_WEIGHT_FILES present)."""
    folder = Path(folder)
    for name in HF_WEIGHT_FILES:
        if (folder / name).is_file():
            return folder / name
    raise UserError(f"{folder} is a folder without GPT-2 weights: expected one of {', '.join(HF_WEIGHT_FILES)} "
                    f"(as Hugging Face's save_pretrained writes), or name a weight file")


def load_weights(path, num_heads: int | None = None) -> tuple[GPTConfig, torch.Tensor]:
    """Any supported weight file: llm.c (recognised by its magic number), a Hugging Face state dict,
    or a Hugging Face save_pretrained folder."""
    path = Path(path)
    if path.is_dir():
        return read_hf(path, num_heads=num_heads)
    if not path.is_file():
        raise UserError(f"no weight file at {path}")
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) == 4 and int.from_bytes(head, "little") == MODEL_MAGIC:
        return read_llmc(path)
    return read_hf(path, num_heads=num_heads)
