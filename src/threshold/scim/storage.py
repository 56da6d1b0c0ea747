"""An organization's SCIM Users and Groups: scim2-server's `AsyncScimStorage`, one per request, bound
to the organization the bearer token speaks for. Every read and write names that organization, so a
token of one organization never sees or touches another's resources.

Searches narrow their candidates in SQL by the equality terms Entra ID and Okta send (`userName eq`,
`externalId eq`, `id eq`, a group's `displayName eq`, joined by `and`, or `or` on one attribute), then
evaluate the exact filter with scim2-models (`ScimFilter.match`), so `co`, `sw`, `pr`, `or` and `not`
are right whatever was narrowed. A search without a filter is paged in SQL.
"""

from __future__ import annotations

import contextlib
import datetime
import json
from collections.abc import Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any, cast

from scim2_models import (
    Group,
    InvalidValueException,
    Meta,
    NotFoundException,
    PreconditionFailedException,
    Resource,
    ResourceType,
    ResponseParameters,
    ScimProvider,
    SearchRequest,
    UniquenessException,
    User,
)
from scim2_models.path import AttrPath, CompareOperator, Comparison, FilterNode, LogicalExpr, LogicalOperator
from scim2_server.storage import AsyncScimStorage, SearchPage

from threshold.core.clock import Clock
from threshold.core.errors import EmailUnavailable
from threshold.core.models import RequestContext
from threshold.core.orgs.models import OrgRole, highest_role
from threshold.core.orgs.service import Actor
from threshold.core.scim.accounts import ProvisionedAccount, ScimAccounts
from threshold.core.scim.resources import Narrowing, ScimNameTaken, ScimRecord, ScimResourceRepo
from threshold.core.scim.tokens import ScimClient
from threshold.core.secrets import new_id

USER = "User"
GROUP = "Group"
CORE_URNS = ("urn:ietf:params:scim:schemas:core:2.0:user", "urn:ietf:params:scim:schemas:core:2.0:group")
MAX_NAME = 320
MAX_EXTERNAL_ID = 255


def _version_tag(version: int) -> str:
    return f'W/"{version}"'


def _version_of(tag: str | None) -> int | None:
    """The stored version an ETag names (None for no tag; -1 for one that names none)."""
    if tag is None:
        return None
    text = tag.removeprefix("W/").strip('"')
    return int(text) if text.isdigit() else -1


def _type(resource_type: ResourceType) -> str:
    return resource_type.name or ""


def _time(seconds: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def narrowing_of(node: FilterNode, resource_type: str) -> Narrowing | None:
    """The candidates' narrowing for a filter on one resource type, or None (walk every resource)."""
    if isinstance(node, Comparison):
        return _comparison(node, resource_type)
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.and_:
        found = [n for n in (narrowing_of(term, resource_type) for term in node.terms) if n is not None]
        if not found:
            return None
        combined = found[0]
        for other in found[1:]:
            combined = Narrowing(
                ids=_both(combined.ids, other.ids),
                name_keys=_both(combined.name_keys, other.name_keys),
                external_ids=_both(combined.external_ids, other.external_ids),
            )
        return combined
    if isinstance(node, LogicalExpr) and node.op == LogicalOperator.or_:
        terms = [narrowing_of(term, resource_type) for term in node.terms]
        kept = [t for t in terms if t is not None]
        if len(kept) != len(terms):
            return None
        for field in ("ids", "name_keys", "external_ids"):
            if all(_only(t) == field for t in kept):
                union: frozenset[str] = frozenset().union(*(getattr(t, field) for t in kept))
                return Narrowing(**{field: union})
    return None


def _only(narrowing: Narrowing) -> str | None:
    """The one field a narrowing constrains, if it constrains exactly one."""
    fields = [name for name in ("ids", "name_keys", "external_ids") if getattr(narrowing, name) is not None]
    return fields[0] if len(fields) == 1 else None


def _both(a: frozenset[str] | None, b: frozenset[str] | None) -> frozenset[str] | None:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _comparison(node: Comparison, resource_type: str) -> Narrowing | None:
    path: AttrPath = node.attr_path
    if node.op != CompareOperator.eq or not isinstance(node.value, str) or path.sub_attr is not None:
        return None
    if path.uri is not None and path.uri.lower() not in CORE_URNS:
        return None
    attr = path.attr.lower()
    if attr == "id":
        return Narrowing(ids=frozenset({node.value}))
    if attr == "externalid":
        return Narrowing(external_ids=frozenset({node.value}))
    if (attr == "username" and resource_type == USER) or (attr == "displayname" and resource_type == GROUP):
        return Narrowing(name_keys=frozenset({node.value.casefold()}))
    return None


def user_address(user: User[Any]) -> str | None:
    """The address a SCIM User is bound by: its work email, else its primary one, else its first, else
    its userName when that is an address."""
    emails = [e for e in (user.emails or []) if e.value]
    for chosen in (
        next((e for e in emails if (e.type or "").lower() == "work"), None),
        next((e for e in emails if e.primary), None),
        emails[0] if emails else None,
    ):
        if chosen is not None and chosen.value:
            return str(chosen.value)
    if user.user_name and "@" in user.user_name:
        return user.user_name
    return None


class ScimBackend:
    """What every request's storage shares: the repository, the account mapping, the models."""

    def __init__(
        self,
        *,
        repo: ScimResourceRepo,
        accounts: ScimAccounts,
        provider: ScimProvider,
        clock: Clock,
        unit_of_work: Callable[[], AbstractAsyncContextManager[None]],
    ) -> None:
        self.repo = repo
        self.accounts = accounts
        self.unit_of_work = unit_of_work
        self.provider = provider
        self.clock = clock
        types = {rt.name: rt for rt in provider.resource_types}
        self.user_type = types[USER]
        self.group_type = types[GROUP]

    def model(self, resource_type: ResourceType) -> type[Resource[Any]]:
        return cast(type[Resource[Any]], self.provider.model_for(resource_type))

    def for_client(self, client: ScimClient, context: RequestContext) -> OrgScimStorage:
        return OrgScimStorage(self, client, context)


class OrgScimStorage(AsyncScimStorage):
    """One organization's resources, for one request (see the module docstring)."""

    def __init__(self, backend: ScimBackend, client: ScimClient, context: RequestContext) -> None:
        self._b = backend
        self._org = client.org
        self._actor = Actor(client.principal)
        self._context = context

    # --- records and resources ------------------------------------------------------------------------

    def _resource(self, resource_type: ResourceType, record: ScimRecord) -> Resource[Any]:
        model = self._b.model(resource_type)
        resource = model.model_validate(json.loads(record.document))
        resource.id = record.id
        resource.meta = Meta(
            resource_type=resource_type.name,
            created=_time(record.created),
            last_modified=_time(record.last_modified),
            version=_version_tag(record.version),
        )
        return resource

    @staticmethod
    def _document(resource: Resource[Any]) -> str:
        """The resource as stored: no meta, no id, and never a password (SCIM's `password` is
        write-only; this service keeps no password from an identity provider)."""
        copy = resource.model_copy(deep=True)
        copy.meta = None
        copy.id = None
        if getattr(copy, "password", None) is not None:
            copy.password = None  # type: ignore[attr-defined]
        return json.dumps(copy.model_dump(), separators=(",", ":"))

    async def _record(self, resource_type: ResourceType, resource_id: str | None) -> ScimRecord:
        record = (
            await self._b.repo.get(self._org.id, _type(resource_type), resource_id[:64])
            if resource_id
            else None
        )
        if record is None:
            raise NotFoundException(detail=f"{resource_type.name} {resource_id!r} not found")
        return record

    @staticmethod
    def _check_version(record: ScimRecord, expected_version: str | None) -> None:
        expected = _version_of(expected_version)
        if expected is not None and expected != record.version:
            raise PreconditionFailedException(detail="The resource changed meanwhile")

    @staticmethod
    def _name_key(resource: Resource[Any], resource_type: str) -> str:
        field = "userName" if resource_type == USER else "displayName"
        name = getattr(resource, "user_name" if resource_type == USER else "display_name", None)
        if not isinstance(name, str) or not name.strip():
            raise InvalidValueException(detail=f"{field} is required")
        if len(name) > MAX_NAME:
            raise InvalidValueException(detail=f"{field} is at most {MAX_NAME} characters")
        return name.casefold()

    @staticmethod
    def _external_id(resource: Resource[Any]) -> str | None:
        value = resource.external_id
        if value is not None and len(value) > MAX_EXTERNAL_ID:
            raise InvalidValueException(detail=f"externalId is at most {MAX_EXTERNAL_ID} characters")
        return value

    # --- AsyncScimStorage -----------------------------------------------------------------------------

    async def get(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        response_parameters: ResponseParameters[Any] | None = None,
    ) -> Resource[Any]:
        return self._resource(resource_type, await self._record(resource_type, resource_id))

    async def search(
        self,
        resource_types: list[ResourceType],
        search_request: SearchRequest[Any],
        *,
        position: Any = None,
    ) -> SearchPage:
        start = search_request.start_index_0 or 0
        count = search_request.count
        scim_filter = search_request.filter
        if scim_filter is None and len(resource_types) == 1:
            total, records = await self._b.repo.page(
                self._org.id,
                _type(resource_types[0]),
                offset=start,
                limit=count if count is not None else 10**9,
            )
            return SearchPage(total, [self._resource(resource_types[0], r) for r in records])
        found: list[Resource[Any]] = []
        for resource_type in resource_types:
            narrowing = (
                narrowing_of(scim_filter.ast, _type(resource_type)) if scim_filter is not None else None
            )
            records = await self._b.repo.find(self._org.id, _type(resource_type), narrowing or Narrowing())
            for record in records:
                resource = self._resource(resource_type, record)
                if scim_filter is None or scim_filter.match(resource):
                    found.append(resource)
        stop = None if count is None else start + count
        return SearchPage(len(found), found[start:stop])

    async def create(self, resource_type: ResourceType, resource: Resource[Any]) -> Resource[Any]:
        if resource_type.name == USER:
            return await self._create_user(resource_type, cast(User[Any], resource))
        return await self._create_group(resource_type, cast(Group, resource))

    async def update(
        self,
        resource_type: ResourceType,
        resource: Resource[Any],
        *,
        expected_version: str | None = None,
    ) -> Resource[Any]:
        current = await self._record(resource_type, resource.id)
        self._check_version(current, expected_version)
        if resource_type.name == USER:
            return await self._update_user(resource_type, current, cast(User[Any], resource))
        return await self._update_group(resource_type, current, cast(Group, resource))

    async def delete(
        self,
        resource_type: ResourceType,
        resource_id: str,
        *,
        expected_version: str | None = None,
    ) -> None:
        current = await self._record(resource_type, resource_id)
        self._check_version(current, expected_version)
        if resource_type.name == USER and current.user_id is not None:
            # The account's access ends before the resource goes: if this fails, the IdP's retry finds
            # the resource and tries again.
            await self._b.accounts.deprovision(
                self._org, current.user_id, context=self._context, actor=self._actor
            )
        if not await self._b.repo.delete(
            self._org.id, _type(resource_type), current.id, expected_version=current.version
        ):
            raise PreconditionFailedException(detail="The resource changed meanwhile")
        if resource_type.name == USER:
            await self._drop_from_groups(current.id)
        else:
            await self._apply_roles(self._members(self._resource(resource_type, current)))

    # --- Users ----------------------------------------------------------------------------------------

    async def _create_user(self, resource_type: ResourceType, user: User[Any]) -> Resource[Any]:
        name_key = self._name_key(user, USER)
        external_id = self._external_id(user)
        if await self._b.repo.find(self._org.id, USER, Narrowing(name_keys=frozenset({name_key}))):
            raise UniquenessException(detail="Another User of the organization has this userName")
        address = user_address(user)
        if address is None:
            raise InvalidValueException(
                detail="A User needs an email address at one of the organization's verified domains, "
                "in emails (work or primary) or as its userName"
            )
        document = self._document(user)

        def bound_to(account: ProvisionedAccount) -> ScimRecord:
            now = self._b.clock.now()
            return ScimRecord(
                id=new_id(),
                org_id=self._org.id,
                resource_type=USER,
                name_key=name_key,
                document=document,
                version=1,
                created=now,
                last_modified=now,
                user_id=account.user.id,
                external_id=external_id,
                active=user.active if user.active is not None else True,
            )

        record: ScimRecord | None = None
        try:
            fresh = await self._b.accounts.unclaimed(self._org, address)
            if fresh is not None:
                # An initial sync's common case: the account, its membership, their audit events and the
                # resource are one transaction: all of them, or (a name taken meanwhile) none.
                with contextlib.suppress(EmailUnavailable):  # an account made meanwhile: as below
                    async with self._b.unit_of_work():
                        account = await self._b.accounts.provision_new(
                            self._org, fresh, context=self._context, actor=self._actor
                        )
                        record = bound_to(account)
                        await self._b.repo.add(record)
            if record is None:
                account = await self._b.accounts.provision(
                    self._org, address=address, context=self._context, actor=self._actor
                )
                record = bound_to(account)
                await self._b.repo.add(record)
        except ScimNameTaken:
            raise UniquenessException(
                detail="Another User of the organization has this userName, or is bound to this address"
            ) from None
        if user.active is False:
            await self._b.accounts.deactivate(
                self._org, account.user.id, context=self._context, actor=self._actor
            )
        return self._resource(resource_type, record)

    async def _update_user(
        self, resource_type: ResourceType, current: ScimRecord, user: User[Any]
    ) -> Resource[Any]:
        name_key = self._name_key(user, USER)
        external_id = self._external_id(user)
        before = cast(User[Any], self._resource(resource_type, current))
        old_address, new_address = user_address(before), user_address(user)
        if current.user_id is not None and new_address is not None and new_address != old_address:
            try:
                await self._b.accounts.change_address(
                    self._org, current.user_id, address=new_address, context=self._context, actor=self._actor
                )
            except EmailUnavailable:
                raise UniquenessException(detail="Another account has this address") from None
        was_active = current.active is not False
        active = was_active if user.active is None else user.active
        record = replace(
            current,
            name_key=name_key,
            external_id=external_id,
            active=active,
            document=self._document(user),
            version=current.version + 1,
            last_modified=self._b.clock.now(),
        )
        await self._replace(record, current)
        if current.user_id is not None and active != was_active:
            change = self._b.accounts.reactivate if active else self._b.accounts.deactivate
            await change(self._org, current.user_id, context=self._context, actor=self._actor)
        return self._resource(resource_type, record)

    async def _replace(self, record: ScimRecord, current: ScimRecord) -> None:
        try:
            stored = await self._b.repo.replace(record, expected_version=current.version)
        except ScimNameTaken:
            raise UniquenessException(detail="Another resource of the organization has this name") from None
        if not stored:
            raise PreconditionFailedException(detail="The resource changed meanwhile")

    # --- Groups ---------------------------------------------------------------------------------------

    @staticmethod
    def _members(group: Resource[Any]) -> list[str]:
        return [str(m.value) for m in (cast(Group, group).members or []) if m.value]

    async def _check_members(self, group: Group) -> None:
        """Members are Users of this organization (Groups in groups are not supported)."""
        for member in group.members or []:
            if not member.value:
                raise InvalidValueException(detail="A member needs a value (the User's id)")
            if member.type is not None and member.type != USER:
                raise InvalidValueException(detail="Only Users can be members of a group")
        wanted = set(self._members(group))
        if not wanted:
            return
        known = {r.id for r in await self._b.repo.get_many(self._org.id, USER, sorted(wanted))}
        unknown = sorted(wanted - known)
        if unknown:
            raise InvalidValueException(detail=f"Unknown member: no User {unknown[0][:64]!r} here")

    async def _create_group(self, resource_type: ResourceType, group: Group) -> Resource[Any]:
        name_key = self._name_key(group, GROUP)
        external_id = self._external_id(group)
        await self._check_members(group)
        now = self._b.clock.now()
        record = ScimRecord(
            id=new_id(),
            org_id=self._org.id,
            resource_type=GROUP,
            name_key=name_key,
            document=self._document(group),
            version=1,
            created=now,
            last_modified=now,
            external_id=external_id,
        )
        try:
            await self._b.repo.add(record)
        except ScimNameTaken:
            raise UniquenessException(
                detail="Another Group of the organization has this displayName"
            ) from None
        await self._apply_roles(self._members(group))
        return self._resource(resource_type, record)

    async def _update_group(
        self, resource_type: ResourceType, current: ScimRecord, group: Group
    ) -> Resource[Any]:
        name_key = self._name_key(group, GROUP)
        external_id = self._external_id(group)
        await self._check_members(group)
        before = self._members(self._resource(resource_type, current))
        record = replace(
            current,
            name_key=name_key,
            external_id=external_id,
            document=self._document(group),
            version=current.version + 1,
            last_modified=self._b.clock.now(),
        )
        await self._replace(record, current)
        await self._apply_roles([*before, *self._members(group)])
        return self._resource(resource_type, record)

    async def _groups(self) -> list[tuple[ScimRecord, Group]]:
        records = await self._b.repo.find(self._org.id, GROUP, Narrowing())
        return [(r, cast(Group, self._resource(self._b.group_type, r))) for r in records]

    async def _drop_from_groups(self, user_resource_id: str) -> None:
        """A deleted User leaves every group it was in (RFC 7644 section 3.6: its references go)."""
        for record, group in await self._groups():
            members = group.members or []
            kept = [m for m in members if m.value != user_resource_id]
            if len(kept) == len(members):
                continue
            group.members = kept
            updated = replace(
                record,
                document=self._document(group),
                version=record.version + 1,
                last_modified=self._b.clock.now(),
            )
            await self._b.repo.replace(updated, expected_version=None)

    async def _apply_roles(self, user_resource_ids: Iterable[str]) -> None:
        """Each account's role in the organization from the mapped groups it is in now (the role-group
        mapping of the organization's SSO connections): the highest wins, none is member."""
        affected = sorted(set(user_resource_ids))
        if not affected:
            return
        mapping = await self._b.accounts.group_roles(self._org)
        if not mapping:
            return
        roles: dict[str, list[OrgRole]] = {member: [] for member in affected}
        for record, group in await self._groups():
            role = mapping.get(record.name_key)
            if role is None:
                continue
            for member in self._members(group):
                if member in roles:
                    roles[member].append(role)
        users = await self._b.repo.get_many(self._org.id, USER, affected)
        for user_record in users:
            if user_record.user_id is None:
                continue
            await self._b.accounts.set_role(
                self._org,
                user_record.user_id,
                highest_role(roles[user_record.id]),
                context=self._context,
                actor=self._actor,
            )
