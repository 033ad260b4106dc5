"""harness/gpu.py's launch logic that needs no GPU: the shared-memory opt-in."""


def test_the_shared_memory_opt_in_counts_the_kernels_static_bytes(monkeypatch):
    """Without an opt-in a block has 48 KB of shared memory, static and dynamic together: a kernel
    with 40 KB of static arrays must opt in for 16 KB of dynamic memory, not only past 48 KB."""
    from contextlib import nullcontext

    from harness import gpu

    class FakeRawKernel:
        shared_size_bytes = 40 * 1024
        max_dynamic_shared_size_bytes = 0

        def __init__(self):
            self.launches = []

        def __call__(self, grid, block, args, shared_mem=0):
            self.launches.append((shared_mem, self.max_dynamic_shared_size_bytes))

    monkeypatch.setattr(gpu, "_stream", nullcontext)  # no CUDA stream here
    raw = FakeRawKernel()
    kernel = gpu.Kernel(raw, "fake")
    kernel((1,), (32,), (), shared_mem=8 * 1024)  # 48 KB in all: fits without the opt-in
    kernel((1,), (32,), (), shared_mem=16 * 1024)  # 56 KB: opts in first
    kernel((1,), (32,), (), shared_mem=12 * 1024)  # within what was opted in
    assert raw.launches == [(8 * 1024, 0), (16 * 1024, 16 * 1024), (12 * 1024, 16 * 1024)]
