"""How SCIM resources are stored: one record per User or Group of an organization, its document as
JSON and the columns its filters and uniqueness need (implemented in adapters/sql/scim_repos.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from threshold.core.errors import Conflict


@dataclass(frozen=True, slots=True)
class ScimRecord:
    id: str
    org_id: str
    resource_type: str
    """The resource type's name: "User" or "Group"."""
    name_key: str
    """userName (User) or displayName (Group), casefolded: unique per organization and type."""
    document: str
    """The resource as JSON, without `meta`."""
    version: int
    created: float
    last_modified: float
    user_id: str | None = None
    """A User's Threshold account."""
    external_id: str | None = None
    active: bool | None = None


@dataclass(frozen=True, slots=True)
class Narrowing:
    """Candidates of a search, from the equality terms of its filter that the storage indexes: each
    field None (any value) or the values one of which the resource must have. The filter itself is then
    evaluated on the candidates, so a narrowing only has to keep every resource that could match."""

    ids: frozenset[str] | None = None
    name_keys: frozenset[str] | None = None
    external_ids: frozenset[str] | None = None

    @property
    def unconstrained(self) -> bool:
        return self.ids is None and self.name_keys is None and self.external_ids is None


class ScimNameTaken(Conflict):
    code = "scim_name_taken"
    message = "Another resource of the organization has this userName (or this group's displayName)."


class ScimResourceRepo(Protocol):
    async def add(self, record: ScimRecord) -> None:
        """Raises ScimNameTaken."""
        ...

    async def get(self, org_id: str, resource_type: str, resource_id: str) -> ScimRecord | None: ...

    async def get_many(self, org_id: str, resource_type: str, ids: Sequence[str]) -> Sequence[ScimRecord]: ...

    async def find(self, org_id: str, resource_type: str, narrowing: Narrowing) -> Sequence[ScimRecord]:
        """Every resource of the type that the narrowing keeps (all of them when it is unconstrained)."""
        ...

    async def page(
        self, org_id: str, resource_type: str, *, offset: int, limit: int
    ) -> tuple[int, Sequence[ScimRecord]]:
        """How many resources the type has, and one page of them in creation order."""
        ...

    async def replace(self, record: ScimRecord, *, expected_version: int | None) -> bool:
        """Store the new state (its `version` is the new one) if the stored version is still
        `expected_version` (or whatever it is, when None). False: gone or changed meanwhile.

        Raises:
            ScimNameTaken.
        """
        ...

    async def delete(
        self, org_id: str, resource_type: str, resource_id: str, *, expected_version: int | None
    ) -> bool: ...
