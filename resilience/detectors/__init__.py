"""Vendor detectors: who answered, and what the answer means.

A detector is any object with the attributes of :class:`Detector`. The built-in
ones (Gameye, 8bitedge, Playwave) are registered by the same call third parties
use, :func:`register_detector`, or through the ``resilience.detectors``
entry-point group; the generic rule answers when no vendor is recognised.

Everything vendor-specific the retry flow needs (capacity waits, region
fields, what a conflict means, which requests carry their own idempotency,
where a success's trace id is) comes from a detector's optional hooks, read
into :class:`VendorRules` by :func:`rules_of`.
"""

from resilience.detectors._base import Detector, status_category
from resilience.detectors._registry import (
    detector_named,
    register_detector,
    registered_detectors,
    unregister_detector,
)
from resilience.detectors.eightbitedge import EightBitEdgeDetector
from resilience.detectors.gameye import GameyeDetector
from resilience.detectors.generic import GenericDetector
from resilience.detectors.playwave import PlaywaveDetector
from resilience.detectors.rules import VendorRules, rules_of

__all__ = [
    "Detector",
    "EightBitEdgeDetector",
    "GameyeDetector",
    "GenericDetector",
    "PlaywaveDetector",
    "VendorRules",
    "detector_named",
    "register_detector",
    "registered_detectors",
    "rules_of",
    "status_category",
    "unregister_detector",
]

for _builtin in (GameyeDetector, PlaywaveDetector, EightBitEdgeDetector):
    register_detector(_builtin)
del _builtin
