"""The one exception type for problems with what the user gave us."""


class InputError(ValueError):
    """Bad user input (a file, folder, config key or value), named in the message.

    Command-line entry points report it in one line and exit with status 2, no traceback.
    """


# How a DataLoader worker's exception reaches the main process: re-raised with the same type, its message
# prefixed by "Caught X in DataLoader worker process N." and the worker's traceback.
_WORKER_TRACEBACK = "Original Traceback (most recent call last):"


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` without the worker traceback a DataLoader adds to it (the original message only)."""
    text = str(exc)
    if _WORKER_TRACEBACK not in text:
        return text
    last = text.rstrip().splitlines()[-1]  # "rvsl.utils.errors.InputError: image does not decode: PATH"
    prefix = f"{type(exc).__module__}.{type(exc).__qualname__}: "
    return last[len(prefix):] if last.startswith(prefix) else last
