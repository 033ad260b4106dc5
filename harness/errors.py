"""Errors that reach users as a one-line message and exit code 2, never as a traceback."""


class UserError(Exception):
    """Bad input from the user: the message says what was wrong and what to do."""


class ShapeRefused(UserError):
    """A variant was asked for a shape, dtype or launch configuration it declares it cannot handle."""


class NoGPU(UserError):
    """The command needs a CUDA GPU and none is usable here."""


class GPUFault(Exception):
    """A kernel broke the CUDA context (an illegal address, say): nothing more can run in this process.
    The message names the launch and the command that reproduces it alone."""
