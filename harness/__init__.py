"""The harness: compile and load kernels, check them against references, time them, report.

Nothing here is specific to a layer; layers describe themselves with harness.contract.
"""
