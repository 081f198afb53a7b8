"""``python -m emo_core.train``: the old name of the training command line, kept so documented commands work.
The trainer lives in ``emo_core.training``."""

if __name__ == "__main__":
    import sys

    from .training.cli import main

    sys.exit(main())
