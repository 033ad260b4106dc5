"""best.yaml: which kernel variant and launch configuration the trainer runs for every layer pass.

    # what `python bench.py --select best.yaml` writes
    bf16:
      layernorm.forward: {variant: 6, config: {block_size: 256}}
      matmul.forward: {variant: 3}
      ...
    fp32:
      ...

One section per dtype; the trainer reads the section of the dtype it trains in. A missing `config`
means the variant's first (default) configuration. A section names either `attention.*` or
`flash_attention.*` (forward and backward), never both: the step runs one attention. The trainer reaches kernels only through this
file and the registry.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.atomic import atomic_write
from harness.contract import Variant
from harness.errors import UserError

# Every op the GPT-2 training step runs, except attention.
COMMON_OPS = (
    "encoder.forward", "encoder.backward",
    "layernorm.forward", "layernorm.backward",
    "matmul.forward", "matmul.backward",
    "gelu.forward", "gelu.backward",
    "residual.forward",
    "classifier.forward", "classifier.backward",
    "adamw.update",
    "global_norm.forward",
)
# Attention comes in two families with different contracts, and the step runs one of them, forward
# and backward together: "attention" saves the (B, NH, T, T) probabilities for the backward,
# "flash_attention" one log-sum-exp per query row (the backward recomputes the probabilities).
ATTENTION_FAMILIES = ("attention", "flash_attention")


def family_ops(family: str) -> tuple[str, str]:
    return f"{family}.forward", f"{family}.backward"


ENTRY_KEYS = {"variant", "config"}


@dataclass(frozen=True)
class Choice:
    variant: Variant
    config: dict

    def describe(self) -> str:
        settings = " ".join(f"{k}={v}" for k, v in self.config.items())
        repeats = "" if self.variant.deterministic else ", not deterministic"
        return f"{self.variant.id} ({self.variant.name}{repeats}){' [' + settings + ']' if settings else ''}"


def ops_by_id() -> dict:
    from harness.registry import all_ops

    return {op.id: op for op in all_ops()}


def parse_selection(data, dtype: str, where: str, required=None) -> dict[str, Choice]:
    """Validate one dtype section of a best.yaml document and resolve it against the registry.

    `required` lists the ops the section must name; by default what the trainer runs: every op of
    COMMON_OPS and exactly one attention family, both of its passes."""
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping with 'fp32' and/or 'bf16' sections")
    unknown_sections = sorted(set(data) - {"fp32", "bf16"})
    if unknown_sections:
        raise UserError(f"{where}: unknown sections {unknown_sections}; use 'fp32' and 'bf16'")
    section = data.get(dtype)
    if not isinstance(section, dict):
        raise UserError(f"{where}: no '{dtype}' section; run `python bench.py --select {where}` on a GPU, "
                        f"or write one (see trainer/kernels.py)")
    ops = ops_by_id()
    unknown = sorted(set(section) - set(ops))
    if unknown:
        raise UserError(f"{where} [{dtype}]: unknown layer passes {unknown}; valid ones: {', '.join(sorted(ops))}")
    if required is None:
        required = COMMON_OPS + family_ops(attention_family(section, f"{where} [{dtype}]"))
    missing = [op_id for op_id in required if op_id not in section]
    if missing:
        raise UserError(f"{where} [{dtype}]: no entry for {', '.join(missing)} (the trainer runs every one)")
    choices = {}
    for op_id, entry in section.items():
        label = f"{where} [{dtype}] {op_id}"
        if not isinstance(entry, dict):
            raise UserError(f"{label}: expected {{variant: N, config: {{...}}}}, got {entry!r}")
        bad_keys = sorted(set(entry) - ENTRY_KEYS)
        if bad_keys:
            raise UserError(f"{label}: unknown keys {bad_keys}; allowed: variant, config")
        if not isinstance(entry.get("variant"), int):
            raise UserError(f"{label}: 'variant' must be an integer")
        variant = ops[op_id].variant_by_number(entry["variant"])
        if dtype not in variant.dtypes:
            raise UserError(f"{label}: variant {variant.number} supports {', '.join(variant.dtypes)}, not {dtype}")
        config = entry.get("config")
        if config is None:
            config = dict(variant.configs[0])
        if not isinstance(config, dict) or config not in variant.configs:
            valid = "; ".join(str(c) for c in variant.configs)
            raise UserError(f"{label}: config {config!r} is not one variant {variant.number} sweeps: {valid}")
        choices[op_id] = Choice(variant, dict(config))
    return choices


def load_selection(path: Path, dtype: str, required=None) -> dict[str, Choice]:
    import yaml

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path} not found; write it with `python bench.py --select {path}` "
                        f"(or `python bench.py --select {path} --simplest` for every layer's first variant)")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}") from None
    return parse_selection(data, dtype, str(path), required)


def attention_family(section: dict, label: str) -> str:
    """The attention family a best.yaml section names: exactly one, with both of its passes."""
    named = [family for family in ATTENTION_FAMILIES if any(op_id in section for op_id in family_ops(family))]
    if len(named) > 1:
        raise UserError(f"{label}: entries for both {' and '.join(f'{f}.*' for f in named)}; the training step runs "
                        "one attention, so keep one family's forward and backward")
    if not named:
        wanted = " or ".join(f"{f}.forward and {f}.backward" for f in ATTENTION_FAMILIES)
        raise UserError(f"{label}: no attention entries; name {wanted}")
    return named[0]


def trainer_section(section: dict[str, dict], family: str) -> dict[str, dict]:
    """The entries of `section` the trainer runs with the given attention family."""
    wanted = set(COMMON_OPS) | set(family_ops(family))
    return {op_id: entry for op_id, entry in section.items() if op_id in wanted}


def allowed(variant, deterministic: bool) -> bool:
    """Whether a selection may pick `variant`: any, or with `deterministic` only those whose outputs
    repeat bit for bit (so that a training run does too)."""
    return variant.deterministic or not deterministic


def simplest_selection(dtype: str, deterministic: bool = False) -> dict[str, dict]:
    """Each op's lowest-numbered variant that supports `dtype` (and is deterministic, if asked), at
    its default configuration."""
    section = {}
    for op_id, op in sorted(ops_by_id().items()):
        usable = [v for v in op.variants if dtype in v.dtypes and allowed(v, deterministic)]
        if usable:
            section[op_id] = {"variant": usable[0].number, "config": dict(usable[0].configs[0])}
    return section


def simplest_trainer_selection(dtype: str, deterministic: bool = False) -> dict[str, dict]:
    """simplest_selection for the trainer: with the first attention family (the three-step one)."""
    return trainer_section(simplest_selection(dtype, deterministic), ATTENTION_FAMILIES[0])


def fastest_rows(runs, dtype: str, deterministic: bool = False) -> dict[str, tuple[dict, float]]:
    """From measured runs (harness.runner.Run), each op's fastest variant row that passed its check
    (of a deterministic variant, if asked), at the op's bench shape when it was measured there:
    {op: (entry, median_us)}."""
    ops = ops_by_id()
    by_op: dict[str, list] = {}
    for run in runs:
        if run.dtype == dtype and run.op in ops:
            by_op.setdefault(run.op, []).append(run)
    fastest = {}
    for op_id, op_runs in by_op.items():
        op = ops[op_id]
        numbers = {v.number for v in op.variants if allowed(v, deterministic)}
        bench_shape = op.bench_shape._asdict()
        preferred = [run for run in op_runs if run.shape == bench_shape] or op_runs
        timed = [row for run in preferred for row in run.rows
                 if row.kind == "variant" and row.status == "ok" and row.median_us and row.variant in numbers]
        if timed:
            best = min(timed, key=lambda row: row.median_us)
            fastest[op_id] = ({"variant": best.variant, "config": dict(best.config)}, best.median_us)
    return fastest


def fastest_trainer_selection(runs, dtype: str, deterministic: bool = False) -> tuple[dict[str, dict], list[str], str]:
    """best.yaml's section for `dtype` from measured runs: each op's fastest checked variant (only
    deterministic ones, if asked), and the attention family whose forward plus backward is fastest
    (both passes measured; the first family when neither is). Ops not measured get their simplest
    (allowed) variant. Returns (section, the ops that fell back to their simplest variant, why that family)."""
    fastest = fastest_rows(runs, dtype, deterministic)
    totals = {family: sum(fastest[op_id][1] for op_id in family_ops(family))
              for family in ATTENTION_FAMILIES if all(op_id in fastest for op_id in family_ops(family))}
    if totals:
        family = min(totals, key=totals.get)
        reason = "attention: " + ", ".join(f"{f} {t:.1f} us forward + backward" for f, t in totals.items())
    else:
        family, reason = ATTENTION_FAMILIES[0], "attention: no family measured in both passes"
    section = trainer_section({op_id: entry for op_id, (entry, _) in fastest.items()}, family)
    fallbacks = []
    for op_id, entry in trainer_section(simplest_selection(dtype, deterministic), family).items():
        if op_id not in section:
            section[op_id] = entry
            fallbacks.append(op_id)
    return section, fallbacks, reason


def selection_text(sections: dict[str, dict], comment: str) -> str:
    """best.yaml's text: the comment, then one line per op, as a person would write the file."""
    import yaml

    lines = [f"# {line}" for line in comment.splitlines()]
    for dtype in sorted(sections):
        lines.append(f"{dtype}:")
        lines += [f"  {op_id}: {yaml.safe_dump(entry, default_flow_style=True, sort_keys=False).strip()}"
                  for op_id, entry in sorted(sections[dtype].items())]
    return "\n".join(lines) + "\n"


def write_selection(path: Path, sections: dict[str, dict], comment: str) -> None:
    with atomic_write(path, "w") as handle:
        handle.write(selection_text(sections, comment))
