"""Find every layer under kernels/ and the ops (passes) and variants it declares."""
from __future__ import annotations

import importlib
from functools import lru_cache

from harness.compile import KERNELS_DIR
from harness.contract import Op
from harness.errors import UserError


@lru_cache(maxsize=1)
def layers() -> dict[str, list[Op]]:
    """Layer name -> its ops, from each kernels/<layer>/__init__.py's OPS list, in folder order."""
    found: dict[str, list[Op]] = {}
    for folder in sorted(KERNELS_DIR.iterdir()):
        if not (folder / "__init__.py").exists():
            continue
        module = importlib.import_module(f"kernels.{folder.name}")
        ops = [op for op in getattr(module, "OPS", []) if op is not None]
        if ops:
            found[folder.name] = ops
    return found


def all_ops() -> list[Op]:
    return [op for ops in layers().values() for op in ops]


def all_variants():
    return [variant for op in all_ops() for variant in op.variants]


def find_ops(target: str, pass_name: str | None = None) -> list[Op]:
    """Ops named by a CLI target: "layernorm" (every pass), or "layernorm.backward"."""
    layer, _, target_pass = target.partition(".")
    available = layers()
    if layer not in available:
        raise UserError(f"unknown layer {layer!r}; valid layers: {', '.join(available) or '(none)'}")
    if target_pass and pass_name and target_pass != pass_name:
        raise UserError(f"{target!r} and --pass {pass_name} disagree")
    wanted = target_pass or pass_name
    ops = available[layer]
    if wanted:
        ops = [op for op in ops if op.pass_name == wanted]
        if not ops:
            valid = ", ".join(op.pass_name for op in available[layer])
            raise UserError(f"layer {layer!r} has no pass {wanted!r}; valid passes: {valid}")
    return ops
