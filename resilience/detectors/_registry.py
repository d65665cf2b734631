"""The process-wide detector chain.

Built-ins are registered with :func:`register_detector`, the call third parties
use; detectors advertised under the ``resilience.detectors`` entry-point group
are loaded once, on first use. Registration order is the order in which body
shapes are tried when the vendor is not known.
"""

from __future__ import annotations

import logging
import threading
from importlib.metadata import entry_points

from resilience.detectors._base import Detector
from resilience.detectors.rules import rules_of

__all__ = [
    "ENTRY_POINT_GROUP",
    "detector_named",
    "register_detector",
    "registered_detectors",
    "unregister_detector",
]

ENTRY_POINT_GROUP = "resilience.detectors"

_log = logging.getLogger(__name__)
_lock = threading.RLock()
_chain: tuple[Detector, ...] = ()
_entry_points_loaded = False


def _check(detector: object) -> Detector:
    if isinstance(detector, type):
        detector = detector()
    if not isinstance(detector, Detector):
        raise TypeError(
            f"a detector needs name, success_body, matches() and classify(); got {detector!r}"
        )
    if not isinstance(detector.name, str) or not detector.name:
        raise ValueError("detector.name must be a non-empty string")
    rules_of(detector)  # a bad optional hook fails here, not during a call
    return detector


def register_detector(detector: object, *, replace: bool = False) -> Detector:
    """Add a detector to the chain every transport and hook consults.

    Args:
        detector: a detector instance, or a class to instantiate with no arguments.
        replace: replace a detector already registered under the same name;
            otherwise registering a taken name is a ``ValueError``.

    Returns:
        The registered detector instance.

    Raises:
        TypeError: ``detector`` lacks the protocol, or one of its optional
            hooks holds a value of the wrong type.
        ValueError: the name is empty or taken, or a hook's value is out of
            range.
    """
    global _chain
    checked = _check(detector)
    with _lock:
        names = [d.name for d in _chain]
        if checked.name in names:
            if not replace:
                raise ValueError(f"a detector named {checked.name!r} is already registered")
            _chain = tuple(checked if d.name == checked.name else d for d in _chain)
        else:
            _chain = (*_chain, checked)
    return checked


def unregister_detector(name: str) -> None:
    """Remove the detector registered under ``name`` (no error when absent)."""
    global _chain
    with _lock:
        _chain = tuple(d for d in _chain if d.name != name)


def _load_entry_points() -> None:
    global _entry_points_loaded, _chain
    # Re-entrant: loading a plugin may import a module that registers itself.
    with _lock:
        if _entry_points_loaded:
            return
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            if any(d.name == entry.name for d in _chain):
                continue
            try:
                detector = _check(entry.load())
            except Exception:
                _log.warning("could not load detector entry point %r", entry.name, exc_info=True)
                continue
            if all(d.name != detector.name for d in _chain):
                _chain = (*_chain, detector)
        # Only now: a reader that sees the flag must see every plugin.
        _entry_points_loaded = True


def registered_detectors() -> tuple[Detector, ...]:
    """The detector chain, in the order body shapes are tried."""
    if not _entry_points_loaded:
        _load_entry_points()
    return _chain


def detector_named(name: str) -> Detector | None:
    """The registered detector called ``name``, or ``None``."""
    for detector in registered_detectors():
        if detector.name == name:
            return detector
    return None
