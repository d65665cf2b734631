"""Placeholder: replaced by the vendor-rules module."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resilience.core.classification import Category
from resilience.regions import RegionLocator, RequestParts


@dataclass(frozen=True, slots=True)
class VendorRules:
    vendor: str
    capacity_wait: tuple[float, float] | None = None
    region_locator: RegionLocator | None = None
    conflict_after_unknown: Category | None = None

    def safe_to_repeat(self, request: RequestParts) -> bool:
        return False

    def success_trace_id(self, headers: Mapping[str, Any]) -> str | None:
        value = headers.get("x-request-id")
        return value[:1024] if isinstance(value, str) and value else None


GENERIC_RULES = VendorRules("generic")
