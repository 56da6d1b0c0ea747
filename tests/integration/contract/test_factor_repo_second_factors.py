"""FactorRepo.second_factors (a sign-in's one lookup) agrees with the lookups it replaces, on SQLite and
PostgreSQL (through SQLAlchemy and through the asyncpg pool the service reads single rows with)."""

from __future__ import annotations

from tests.integration.contract.conftest import Storage, statements_of
from tests.integration.records import user
from threshold.adapters.sql.factor_repos import SqlFactorRepo
from threshold.core.models import Passkey, SecondFactors, TotpCredential
from threshold.core.ports import UserRepo
from threshold.core.secrets import new_id


async def test_second_factors_as_the_separate_lookups_say(users: UserRepo, user_storage: Storage) -> None:
    assert user_storage.engine is not None
    factors = SqlFactorRepo(user_storage.engine, statements=statements_of(user_storage))
    ada, other = user(f"ada.{new_id()}@example.com"), user(f"other.{new_id()}@example.com")
    await users.add(ada, None)
    await users.add(other, None)
    assert await factors.second_factors(ada.id) == SecondFactors(passkey=False, totp=False, recovery_codes=0)

    await factors.put_totp(
        TotpCredential(user_id=ada.id, secret="s", confirmed=False, last_used_step=0, created_at=1.0)
    )
    await factors.replace_recovery_codes(ada.id, ["d1", "d2", "d3"], at=1.0)
    await factors.use_recovery_code(ada.id, "d2", at=2.0)
    assert await factors.second_factors(ada.id) == SecondFactors(passkey=False, totp=False, recovery_codes=2)

    await factors.confirm_totp(ada.id)
    passkey = Passkey(
        id=new_id(), user_id=ada.id, credential_id=new_id(), public_key="k", sign_count=0, transports=(),
        backup_eligible=False, backup_state=False, aaguid="", name="key", created_at=1.0,
    )  # fmt: skip
    await factors.add_passkey(passkey)
    found = await factors.second_factors(ada.id)
    assert found == SecondFactors(passkey=True, totp=True, recovery_codes=2)
    assert found.recovery_codes == await factors.count_recovery_codes(ada.id)
    assert await factors.second_factors(other.id) == SecondFactors(
        passkey=False, totp=False, recovery_codes=0
    )
