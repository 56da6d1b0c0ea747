"""OrgRepo's reads of every sign-in (a domain's claim, an account's memberships) answer the same on
SQLite and PostgreSQL, through SQLAlchemy and through the asyncpg pool the service reads them with, and
inside a unit of work they see what the unit wrote."""

from __future__ import annotations

import time

from tests.integration.contract.conftest import Storage, statements_of
from tests.integration.records import user
from threshold.adapters.sql.db import unit_of_work
from threshold.adapters.sql.org_repos import SqlOrgRepo
from threshold.adapters.sql.repos import SqlUserRepo
from threshold.core.orgs.models import Membership, Organization, OrgDomain, OrgRole
from threshold.core.secrets import new_id


async def _repo_with_an_org(storage: Storage) -> tuple[SqlOrgRepo, Organization]:
    assert storage.engine is not None
    orgs = SqlOrgRepo(storage.engine, statements=statements_of(storage))
    org = Organization(id=new_id(), slug=f"o-{new_id().lower()[:10]}", name="Org", created_at=time.time())
    await orgs.add(org)
    return orgs, org


async def test_a_domain_claim_reads_back_as_written(user_storage: Storage) -> None:
    orgs, org = await _repo_with_an_org(user_storage)
    domain = f"d{new_id().lower()[:12]}.example"
    assert await orgs.get_domain(domain) is None

    claimed = await orgs.add_domain(OrgDomain(domain=domain, org_id=org.id, txt_value="t", created_at=5.5))
    assert await orgs.get_domain(domain) == claimed
    assert claimed.verified is False

    await orgs.mark_verified(domain, at=7.25, trusted=True)
    found = await orgs.get_domain(domain)
    assert found == OrgDomain(
        domain=domain, org_id=org.id, txt_value="t", created_at=5.5, verified_at=7.25, trusted=True
    )
    assert found.verified is True
    assert await orgs.domains(org.id) == [found]


async def test_inside_a_unit_a_claim_is_read_on_the_units_connection(user_storage: Storage) -> None:
    # Reads inside a unit of work see its uncommitted writes (pg_fast.UnitAwareStatements), and nothing of
    # it is visible once it rolled back.
    assert user_storage.engine is not None
    orgs, org = await _repo_with_an_org(user_storage)
    domain = f"u{new_id().lower()[:12]}.example"

    class Undo(Exception):
        pass

    try:
        async with unit_of_work(user_storage.engine):
            await orgs.add_domain(OrgDomain(domain=domain, org_id=org.id, txt_value="t", created_at=1.0))
            seen = await orgs.get_domain(domain)
            assert seen is not None and seen.org_id == org.id
            raise Undo()
    except Undo:
        pass
    assert await orgs.get_domain(domain) is None


async def test_an_accounts_memberships_read_back_oldest_first(user_storage: Storage) -> None:
    """Every sign-in reads them (the organization the session is in): through the asyncpg pool on
    PostgreSQL, as every other backend reads them."""
    orgs, first = await _repo_with_an_org(user_storage)
    _, second = await _repo_with_an_org(user_storage)
    assert user_storage.engine is not None
    accounts = [user(), user()]
    for account in accounts:
        await SqlUserRepo(user_storage.engine).add(account, None)
    user_id, other = accounts[0].id, accounts[1].id
    assert await orgs.memberships_of(user_id) == []
    joined = [
        Membership(org_id=second.id, user_id=user_id, role=OrgRole.ADMIN, created_at=1.5),
        Membership(org_id=first.id, user_id=user_id, role=OrgRole.MEMBER, created_at=2.25),
    ]
    for membership in [
        *joined,
        Membership(org_id=first.id, user_id=other, role=OrgRole.OWNER, created_at=1.0),
    ]:
        await orgs.put_member(membership)
    assert await orgs.memberships_of(user_id) == joined

    # Inside a unit of work, on the unit's connection: its uncommitted change is seen, then undone.

    class Undo(Exception):
        pass

    try:
        async with unit_of_work(user_storage.engine):
            assert await orgs.remove_member(second.id, user_id) is True
            assert await orgs.memberships_of(user_id) == joined[1:]
            raise Undo()
    except Undo:
        pass
    assert await orgs.memberships_of(user_id) == joined
