"""``python -m emo_core.training``: the EIT training command line (``emo_core.training.cli``)."""

import sys

from .cli import main

sys.exit(main())
