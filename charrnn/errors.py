"""The package's own error type: what a user did wrong, said in one line."""


class CharRNNError(Exception):
    """A problem the user can fix (bad file, bad option, bad checkpoint).

    The CLI turns it into a one-line message on stderr and exit status 1.
    """


class CheckpointError(CharRNNError):
    """A checkpoint file that is missing, corrupt or of an unknown format."""


class ConfigError(CharRNNError):
    """A config file or option value that is not valid."""


class DivergenceError(CharRNNError):
    """Training produced a non-finite loss or gradient."""


class CheckpointWriteError(CheckpointError, OSError):
    """A checkpoint that could not be written (a full disk, ...); the previous file is kept.

    Also an OSError, which is what it is underneath."""
