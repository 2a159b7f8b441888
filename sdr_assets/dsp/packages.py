"""rtl_433's end-of-package rule, on pulse times: numpy only.

Its own module so the synthetic ISM band (``dsp.ism``, imported by the capture service's
synthetic source) does not pull in the energy detector's scipy (``dsp.detect``): importing
scipy.signal costs the capture process ~75 MB of RSS.
"""

import numpy as np


def packages_from_pulses(
    starts: np.ndarray, ends: np.ndarray, min_gap: float, max_gap: float, ratio: float
) -> list[tuple[float, float]]:
    """rtl_433's end-of-package rule: a gap ends the package when it exceeds max_gap, or
    both min_gap and ratio x the longest pulse so far."""
    out: list[tuple[float, float]] = []
    if starts.size == 0:
        return out
    a, b, longest = starts[0], ends[0], ends[0] - starts[0]
    for s, e in zip(starts[1:], ends[1:]):
        gap = s - b
        if gap > max_gap or (gap > min_gap and gap > ratio * longest):
            out.append((a, b))
            a, longest = s, 0.0
        b = max(b, e)
        longest = max(longest, e - s)
    out.append((a, b))
    return out
