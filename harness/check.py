"""Correctness: run a variant on fresh inputs with poisoned outputs and compare with the float64 reference.

A `Case` holds one (op, dtype, shape): seeded random inputs rounded to the dtype, the reference
computed in float64 from exactly those rounded inputs, and device buffers for inputs and outputs.
`run_check` poisons every output with NaN, launches, and compares each output elementwise with
|out - ref| <= atol + rtol * |ref|, so an element the kernel never wrote fails.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from harness.contract import Op, Tolerance, Variant, torch_dtype
from harness.emulator.fenced import fenced_empty

MISMATCHES_SHOWN = 5
GUARD_ELEMENTS = 1024  # NaN guard zone on each side of every CPU buffer


def poison_value(dtype: torch.dtype):
    """NaN for floating point; the most negative value for integers (an index no kernel may use)."""
    return float("nan") if dtype.is_floating_point else torch.iinfo(dtype).min


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit for bit (NaN payloads and signed zeros included), which torch.equal is not for floats."""
    return torch.equal(a.view(torch.uint8), b.view(torch.uint8))


@dataclass
class Comparison:
    """How one output compares with its reference."""

    name: str
    passed: bool
    max_abs_err: float
    mean_abs_err: float
    tolerance_used: float  # max over elements of |err| / (atol + rtol*|ref|); <= 1 passes
    bad_count: int
    numel: int
    mismatches: list[tuple[tuple[int, ...], float, float]] = field(default_factory=list)

    def describe(self) -> str:
        if self.passed:
            return (f"{self.name}: ok (max err {self.max_abs_err:.2e}, mean {self.mean_abs_err:.2e}, "
                    f"{100 * self.tolerance_used:.0f}% of tolerance)")
        shown = "; ".join(f"{list(index)}: got {got!r}, want {want!r}" for index, got, want in self.mismatches)
        return (f"{self.name}: {self.bad_count} of {self.numel} elements out of tolerance "
                f"(max err {self.max_abs_err:.3g}); first: {shown}")


def compare(name: str, got: torch.Tensor, want: torch.Tensor, tol: Tolerance) -> Comparison:
    """Elementwise comparison of `got` (any dtype, any device) with the float64 reference `want`."""
    if tuple(got.shape) != tuple(want.shape):
        raise ValueError(f"{name}: shape {tuple(got.shape)} does not match reference {tuple(want.shape)}")
    got64 = got.detach().to(device=want.device, dtype=torch.float64)
    err = (got64 - want).abs()
    allowed = tol.atol + tol.rtol * want.abs()
    # NaN or inf in the output is never within tolerance (a NaN comparison is False).
    ok = err <= allowed
    bad = ~ok
    bad_count = int(bad.sum())
    finite_err = torch.where(torch.isfinite(err), err, torch.full_like(err, float("inf")))
    ratio = finite_err / allowed
    mismatches = []
    if bad_count:
        for flat in torch.nonzero(bad.flatten()).flatten()[:MISMATCHES_SHOWN].tolist():
            index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), tuple(want.shape)))
            mismatches.append((index, float(got64.flatten()[flat]), float(want.flatten()[flat])))
    numel = want.numel()
    return Comparison(
        name=name, passed=bad_count == 0,
        max_abs_err=float(finite_err.max()) if numel else 0.0,
        mean_abs_err=float(finite_err.mean()) if numel else 0.0,
        tolerance_used=float(ratio.max()) if numel else 0.0,
        bad_count=bad_count, numel=numel, mismatches=mismatches)


class Case:
    """Inputs, reference and buffers for one op at one dtype and shape, on one device."""

    def __init__(self, op: Op, dtype: str, dims, seed: int = 0, device: str = "cuda"):
        self.op, self.dtype, self.dims, self.device = op, dtype, op.make_dims(dims), device
        generator = torch.Generator().manual_seed(seed)
        inputs64 = op.make_inputs(self.dims, dtype, generator)
        missing = set(op.inputs) - set(inputs64)
        if missing:
            raise ValueError(f"{op.id}.make_inputs did not produce {sorted(missing)}")
        self.scalars = dict(op.scalars)
        # The float64 reference runs where the kernels do: on a GPU that is far faster at the big shapes.
        on_device = {name: value.to(device) if isinstance(value, torch.Tensor) else value
                     for name, value in inputs64.items()}
        reference = op.reference(on_device | self.scalars | {"dims": self.dims})
        self.reference = {name: reference[name].to(device) for name in op.outputs}
        self.inputs = {name: inputs64[name].to(device=device, dtype=torch_dtype(spec.element_type, dtype))
                       .contiguous() for name, spec in op.inputs.items()}
        self._pristine = {name: tensor.clone() for name, tensor in self.inputs.items()}
        self._guards: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.inputs = {name: self._allocate(name, tensor.shape, tensor.dtype, fill=tensor)
                       for name, tensor in self.inputs.items()}
        self.outputs = {name: self._allocate(name, spec.shape(self.dims), torch_dtype(spec.element_type, dtype))
                        for name, spec in op.outputs.items()}

    def _allocate(self, name: str, shape, dtype: torch.dtype, fill: torch.Tensor | None = None) -> torch.Tensor:
        """On the GPU a plain allocation. On the CPU (the emulator, which has no memory protection)
        the tensor sits between two NaN-filled guard zones: a kernel reading past its end reads NaN,
        and one writing past it changes a guard, which guards_intact() reports. Past the guard zones
        lies inaccessible memory (harness/emulator/fenced.py): an access there faults, and the
        emulator reports the fault as the launch's error."""
        if torch.device(self.device).type != "cpu":
            tensor = torch.empty(shape, dtype=dtype, device=self.device)
        else:
            numel = math.prod(shape)
            base = fenced_empty(numel + 2 * GUARD_ELEMENTS, dtype).fill_(poison_value(dtype))
            tensor = base[GUARD_ELEMENTS:GUARD_ELEMENTS + numel].view(shape)
            self._guards[name] = (base, base.clone())
        if fill is not None:
            tensor.copy_(fill)
        return tensor

    def guards_intact(self) -> list[str]:
        """Tensors whose guard zones a kernel wrote into (out-of-bounds writes; CPU only)."""
        broken = []
        for name, (base, pristine) in self._guards.items():
            before, after = base[:GUARD_ELEMENTS], base[-GUARD_ELEMENTS:]
            if not (same_bits(before, pristine[:GUARD_ELEMENTS]) and same_bits(after, pristine[-GUARD_ELEMENTS:])):
                broken.append(name)
        return broken

    def scratch_for(self, variant: Variant, config: dict) -> dict[str, torch.Tensor]:
        specs = variant.scratch_specs(self.dims, self.dtype, config)
        return {name: self._allocate(name, spec.shape(self.dims), torch_dtype(spec.element_type, self.dtype))
                for name, spec in specs.items()}

    @property
    def tensors(self) -> dict[str, torch.Tensor]:
        return self.inputs | self.outputs

    def poison(self) -> None:
        for tensor in self.outputs.values():
            tensor.fill_(poison_value(tensor.dtype))

    def compare_outputs(self) -> list[Comparison]:
        tolerances = self.op.tolerances[self.dtype]
        return [compare(name, self.outputs[name], self.reference[name], tolerances[name])
                for name in self.op.outputs]

    def inputs_intact(self) -> list[str]:
        """Names of inputs the kernel modified (a kernel must never write its inputs)."""
        return [name for name, tensor in self.inputs.items() if not torch.equal(tensor, self._pristine[name])]


@dataclass
class CheckResult:
    label: str
    comparisons: list[Comparison]
    clobbered_inputs: list[str] = field(default_factory=list)
    out_of_bounds: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.comparisons) and not self.clobbered_inputs and not self.out_of_bounds

    @property
    def tolerance_used(self) -> float:
        return max((c.tolerance_used for c in self.comparisons), default=0.0)

    @property
    def max_abs_err(self) -> float:
        return max((c.max_abs_err for c in self.comparisons), default=0.0)

    def describe(self) -> str:
        lines = [f"{self.label}: {'passed' if self.passed else 'FAILED'}"]
        lines += ["  " + c.describe() for c in self.comparisons]
        if self.clobbered_inputs:
            lines.append(f"  inputs modified by the kernel: {', '.join(self.clobbered_inputs)}")
        if self.out_of_bounds:
            lines.append(f"  written out of bounds (guard zone changed): {', '.join(self.out_of_bounds)}")
        return "\n".join(lines)


def synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def run_check(case: Case, launch, label: str, poison: bool = True) -> CheckResult:
    """Poison the outputs, call `launch()` (which writes case.outputs) and compare with the reference.

    With poison=False the outputs left by earlier launches are compared: the re-check after timing.
    """
    if poison:
        case.poison()
        launch()
    synchronize(case.device)
    return CheckResult(label, case.compare_outputs(), case.inputs_intact(), case.guards_intact())


def run_check_aliased(case: Case, variant: Variant, config: dict, aliases: dict[str, str]) -> CheckResult:
    """Launch with each output in `aliases` sharing the buffer of its input (a copy of the input, so the
    case stays intact) and compare every output with the reference: an in-place call must give the
    same result as one with separate buffers."""
    shared = {name: case.inputs[name].clone() for name in set(aliases.values())}
    case.poison()
    tensors = case.tensors | case.scratch_for(variant, config) | shared
    tensors |= {output: shared[name] for output, name in aliases.items()}
    variant.bind(tensors, case.dims, case.dtype, config, device=torch.device(case.device).type)()
    synchronize(case.device)
    tolerances = case.op.tolerances[case.dtype]
    comparisons = [compare(name, tensors[name], case.reference[name], tolerances[name]) for name in case.op.outputs]
    label = variant_label(variant, case.dtype, case.dims, config) + f" in place {aliases}"
    return CheckResult(label, comparisons)


def variant_label(variant: Variant, dtype: str, dims, config: dict) -> str:
    settings = ",".join(f"{k}={v}" for k, v in config.items())
    return f"{variant.id} {dtype} {variant.op.format_dims(dims)} [{settings}]"


def check_variant(variant: Variant, case: Case, config: dict) -> tuple[CheckResult, callable]:
    """Check one variant at one launch configuration on the case's device (the GPU, or the CPU
    emulator); returns the result and the bound launch."""
    tensors = case.tensors | case.scratch_for(variant, config)
    launch = variant.bind(tensors, case.dims, case.dtype, config, device=torch.device(case.device).type)
    return run_check(case, launch, variant_label(variant, case.dtype, case.dims, config)), launch
