"""hangdoctor: why does my asyncio web service stop answering?"""

from __future__ import annotations

__version__ = "0.1.0"
