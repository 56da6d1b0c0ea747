"""The errors of organizations, with their stable public codes."""

from __future__ import annotations

from threshold.core.errors import Conflict, InvalidRequest, NotFound
from threshold.core.i18n import N_


class OrgNotFound(NotFound):
    code = "org_not_found"
    message = N_("No such organization.")


class SlugTaken(Conflict):
    code = "slug_taken"
    message = N_("Another organization has this slug.")


class DomainTaken(Conflict):
    code = "domain_taken"
    message = N_("This domain belongs to another organization.")


class DomainNotFound(NotFound):
    code = "domain_not_found"
    message = N_("This organization has not added that domain.")


class DomainNotVerified(InvalidRequest):
    code = "domain_not_verified"
    message = N_("The TXT record was not found at the domain's challenge name (DNS can take a while).")


class MemberNotFound(NotFound):
    code = "member_not_found"
    message = N_("That person is not a member of this organization.")


class InvitationInvalid(InvalidRequest):
    code = "invitation_invalid"
    message = N_(
        "This invitation cannot be used: it was used already, has expired, or was sent to another address "
        "than the one you are signed in with."
    )
