"""``python -m emo_core.convert_eit``: the old name of the EIT converter (``emo_core.emoticrafter.convert``), kept so
documented commands work."""

if __name__ == "__main__":
    import sys

    from .emoticrafter.convert import main

    sys.exit(main())
