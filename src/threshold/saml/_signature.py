"""Enveloped XML signatures on a SAML element, verified by signxml against pinned certificates only.

SAML core 5.4: a signed element carries one ds:Signature as a direct child, with one Reference whose
URI is `#` + the element's ID and the enveloped-signature transform. The certificates come from the
identity provider's metadata; a certificate in KeyInfo is never trusted (signxml is given `x509_cert`,
so it ignores X509Data). SHA-1 is refused for both the signature and the digest.
"""

from __future__ import annotations

from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature as CryptographyInvalidSignature
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest
from signxml.verifier import SignatureConfiguration, XMLVerifier

from threshold.saml._xml import DS, child, children, tag
from threshold.saml.errors import Reason, reject

SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)
DIGEST_ALGORITHMS = frozenset({DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512})
_SIGNATURE_URIS = frozenset(method.value for method in SIGNATURE_METHODS)
_DIGEST_URIS = frozenset(algorithm.value for algorithm in DIGEST_ALGORITHMS)

# SAML core 5.4.4: enveloped-signature plus exclusive canonicalization (inclusive tolerated).
_TRANSFORMS = frozenset(
    {
        "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
        "http://www.w3.org/2001/10/xml-exc-c14n#",
        "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
        "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
        "http://www.w3.org/2006/12/xml-c14n11",
        "http://www.w3.org/2006/12/xml-c14n11#WithComments",
    }
)


def signature_of(element: etree._Element) -> etree._Element | None:
    """The element's own enveloped signature (a direct child), if it has one."""
    signatures = children(element, DS, "Signature")
    if len(signatures) > 1:
        reject(Reason.SIGNATURE_INVALID, "The message carries more than one signature on the same element.")
    return signatures[0] if signatures else None


def verify_signed_element(
    element: etree._Element, *, certificates: tuple[str, ...], now: float, what: str
) -> etree._Element:
    """Verify `element`'s enveloped signature with one of `certificates`; return what was signed.

    The return value is the element as signxml re-parsed it from the canonical bytes that the
    signature covers: comments are gone, and nothing outside the signed element is reachable from it.
    Every claim must be read from it, never from `element`.
    """
    signature = signature_of(element)
    if signature is None:
        reject(Reason.NOT_SIGNED, f"The {what} is not signed; this service accepts only signed {what}s.")
    element_id = element.get("ID")
    if not element_id:
        reject(Reason.MALFORMED, f"The signed {what} has no ID attribute.")
    _check_signed_info(signature, element_id=element_id, what=what)
    _check_id_is_unique(element, element_id, what=what)

    config = SignatureConfiguration(
        location="./",  # the signature must be the element's own child
        expect_references=1,
        signature_methods=SIGNATURE_METHODS,
        digest_algorithms=DIGEST_ALGORITHMS,
        verification_time=datetime.fromtimestamp(now, UTC),
    )
    signed_bytes = etree.tostring(element, with_tail=False)
    problems: list[str] = []
    for pem in certificates:
        try:
            certificate = x509.load_pem_x509_certificate(pem.encode("ascii"))
            result = XMLVerifier().verify(
                signed_bytes, x509_cert=certificate, id_attribute="ID", expect_config=config
            )
        except InvalidDigest:
            reject(Reason.SIGNATURE_INVALID, f"The {what} was changed after it was signed (digest mismatch).")
        except InvalidCertificate as exc:
            problems.append(f"a pinned certificate is outside its validity period ({str(exc)[:200]})")
            continue
        except (CryptographyInvalidSignature, ValueError):
            # Wrong key for this signature (or of another type): the next pinned certificate may fit.
            continue
        except Exception:  # noqa: S112 - whatever else signxml raises on hostile input: not verified
            continue
        signed = result.signed_xml if not isinstance(result, list) else None
        if signed is None or signed.tag != element.tag or signed.get("ID") != element_id:
            reject(Reason.SIGNATURE_INVALID, f"The signature does not cover the {what} it is attached to.")
        return signed
    detail = f" ({'; '.join(problems)})" if problems else ""
    reject(
        Reason.SIGNATURE_INVALID,
        f"The {what}'s signature does not verify with any certificate in the identity provider's "
        f"metadata{detail}. If the identity provider changed its signing certificate, upload its new "
        "metadata.",
    )


def _check_signed_info(signature: etree._Element, *, element_id: str, what: str) -> None:
    signed_info = child(signature, DS, "SignedInfo")
    if signed_info is None:
        reject(Reason.SIGNATURE_INVALID, f"The {what}'s signature has no SignedInfo.")
    method = child(signed_info, DS, "SignatureMethod")
    algorithm = method.get("Algorithm") if method is not None else None
    if algorithm not in _SIGNATURE_URIS:
        reject(
            Reason.ALGORITHM_FORBIDDEN,
            f"The {what} is signed with {algorithm or 'no algorithm'}; this service accepts RSA or ECDSA "
            "with SHA-256, SHA-384 or SHA-512 only (never SHA-1).",
        )
    references = children(signed_info, DS, "Reference")
    if len(references) != 1:
        reject(Reason.SIGNATURE_INVALID, f"The {what}'s signature must have exactly one Reference.")
    reference = references[0]
    digest = child(reference, DS, "DigestMethod")
    digest_algorithm = digest.get("Algorithm") if digest is not None else None
    if digest_algorithm not in _DIGEST_URIS:
        reject(
            Reason.ALGORITHM_FORBIDDEN,
            f"The {what}'s signature uses the digest {digest_algorithm or 'none'}; this service accepts "
            "SHA-256, SHA-384 or SHA-512 only (never SHA-1).",
        )
    if reference.get("URI") != "#" + element_id:
        reject(Reason.SIGNATURE_INVALID, f"The signature does not refer to the {what} it is attached to.")
    transforms = child(reference, DS, "Transforms")
    for transform in transforms.iterchildren() if transforms is not None else ():
        if transform.tag != tag(DS, "Transform") or transform.get("Algorithm") not in _TRANSFORMS:
            reject(Reason.SIGNATURE_INVALID, f"The {what}'s signature uses a transform SAML does not allow.")


def _check_id_is_unique(element: etree._Element, element_id: str, *, what: str) -> None:
    """No other element of the whole document may claim the signed element's ID (a wrapping attack)."""
    document = element.getroottree()
    same = document.xpath(
        "//*[@*[local-name()='ID' or local-name()='Id' or local-name()='id'] = $value]", value=element_id
    )
    if not isinstance(same, list) or len(same) != 1:
        reject(Reason.SIGNATURE_INVALID, f"More than one element of the message claims the {what}'s ID.")
