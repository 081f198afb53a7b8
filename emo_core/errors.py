"""Exceptions shared by emo_core's loaders and networks, and the base every emo_core error class derives from."""


class EmoError(Exception):
    """Base of emo_core's own error classes. The host reports an error as ``<class module>.<name>: message``, and it
    names a custom node's modules by their install path, so users (and API clients) would see where the server keeps
    its files: every subclass reports itself as ``emo_nodes.<Name>`` instead."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.__module__ = "emo_nodes"


class CheckpointError(EmoError, ValueError):
    """A model file that cannot be used: unreadable, corrupt, of another model, or with missing/misshapen weights.

    The message names the file and says what was expected.
    """
