"""`hangdoctor scan`: find hangs in source code with the catalog, across functions and modules.

result = scan_paths([Path("app")])
for finding in result.findings: ...   # hangdoctor.model.Finding, col 0-based
result.exit_code                      # 0 nothing, 1 findings, 2 a file could not be scanned
"""

from __future__ import annotations

from hangdoctor.scan.config import ScanConfig, ScanConfigError, load_config
from hangdoctor.scan.engine import ChainStep, ScanOptions, ScanResult, ScanStats, scan_paths
from hangdoctor.scan.facts import FileProblem

__all__ = [
    "ChainStep",
    "FileProblem",
    "ScanConfig",
    "ScanConfigError",
    "ScanOptions",
    "ScanResult",
    "ScanStats",
    "load_config",
    "scan_paths",
]
