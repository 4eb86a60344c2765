"""minibert's exception types.

Each subclasses the built-in exception a caller would already catch, so
``except ValueError`` keeps working, while ``except MinibertError`` catches
everything minibert raises on purpose.
"""


class MinibertError(Exception):
    """Base class of every error minibert raises deliberately."""


class ConfigError(MinibertError, ValueError):
    """A configuration is unreadable, inconsistent or asks for something unsupported."""


class CheckpointError(MinibertError, ValueError):
    """A checkpoint file is missing, corrupt, unsafe, or does not fit the model."""


class TokenizerError(MinibertError, ValueError):
    """A tokenizer folder asks for something unsupported, or a call's arguments cannot be honoured."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """No usable checkpoint (folder, file or Hub repository) exists at the given name."""


class InputError(MinibertError, ValueError):
    """A model's inputs (ids, masks, positions, embeddings) are out of range or of the wrong shape."""


class InputTypeError(InputError, TypeError):
    """A model's input has the wrong dtype (float ids, float64 embeddings for a float32 model)."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message: enough to name the cause in a one-line error."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]
