"""The lab: one folder per layer, one numbered .cu file per kernel variant (see kernels/README.md)."""
