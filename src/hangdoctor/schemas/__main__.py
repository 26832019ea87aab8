"""`python -m hangdoctor.schemas [--check]`: regenerate docs/json-schema.md from the schemas."""

from __future__ import annotations

import sys

from hangdoctor.schemas import main

sys.exit(main())
