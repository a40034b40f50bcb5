"""Who runs the service, as the Impressum (§ 5 DDG) and the privacy page (GDPR art. 13)
name them: SMARTPRACTICE_OPERATOR_* (docs/configuration.md, "The operator")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

# Needed on every public service; the rest is asked by § 5 DDG only in some cases.
REQUIRED = ("name", "address", "contact")


@dataclass(frozen=True)
class Impressum:
    name: str = ""
    address: str = ""
    contact: str = ""
    register: str = ""
    vat_id: str = ""
    supervisory_authority: str = ""
    chamber: str = ""
    profession: str = ""
    professional_rules: str = ""
    economic_id: str = ""

    @classmethod
    def from_settings(cls, raw: Mapping[str, str]) -> Impressum:
        """From the settings without their prefix (OPERATOR_NAME, …)."""
        return cls(**{field.name: raw["OPERATOR_" + field.name.upper()].strip() for field in fields(cls)})

    def missing(self) -> list[str]:
        """The names of the settings every public service needs that are empty."""
        return ["OPERATOR_" + name.upper() for name in REQUIRED if not getattr(self, name)]
