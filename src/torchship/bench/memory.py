"""Resident memory of this process: now, and the peak since the last reset.

On Linux the peak is the kernel's high-water mark (``VmHWM`` in ``/proc/self/status``),
which writing ``5`` to ``/proc/self/clear_refs`` resets to the current RSS; so the peak of
one runtime load is not the peak of an earlier, larger one. Elsewhere only
``getrusage``'s lifetime maximum exists, and the scope says so: use ``--isolate`` there.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")

# What a peak_rss_bytes figure covers; recorded with every result.
SCOPE_RESET = "process peak since this runtime's load (VmHWM reset)"
SCOPE_LIFETIME = "process lifetime peak (getrusage; earlier loads included)"
SCOPE_ISOLATED = "fresh process per artifact/runtime"


def _status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def rss_bytes() -> int | None:
    """Current resident set size, or None where the platform does not say."""
    kib = _status_kib("VmRSS")
    return kib * 1024 if kib is not None else None


def peak_rss_bytes() -> int:
    """Peak resident set size since the last :func:`reset_peak_rss` (or process start)."""
    kib = _status_kib("VmHWM")
    if kib is not None:
        return kib * 1024
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss if sys.platform == "darwin" else maxrss * 1024  # macOS reports bytes, Linux KiB


def reset_peak_rss() -> str:
    """Reset the peak to the current RSS where the kernel allows it; return the scope that results."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return SCOPE_LIFETIME
    return SCOPE_RESET
