"""Signed ``client_reference_id`` values: made for the Payment Links and pricing tables the
app hands out, read back when an event links a customer to the account one names.

A Payment Link or pricing table takes ``client_reference_id`` from its URL or
HTML, so a payer may write any user id there. A signed reference is
``<user id>-<signature>``: the signature is itsdangerous's (HMAC-SHA256, keyed by
``STRIPE_REFERENCE_SECRET`` or the app's ``SECRET_KEY``) and urlsafe base64, and
Stripe accepts only letters, digits, ``-`` and ``_`` (up to 200 characters) there.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from itsdangerous import Signer

from ..config import Settings
from ..core.rules import ReferenceReader
from ..errors import NotConfiguredError

#: Keeps these signatures apart from anything else the app signs with ``SECRET_KEY``.
SALT = "flask-stripe-billing.client-reference-id"


#: What Stripe keeps in ``client_reference_id`` (anything else is dropped silently).
MAX_REFERENCE_LENGTH = 200


_REFERENCE_TEXT = re.compile(r"[A-Za-z0-9_-]+")


def _signer(secret: str) -> Signer:
    return Signer(secret, salt=SALT, digest_method=hashlib.sha256)


#: A signature's length (it may itself hold ``-``, so a reference is split by length).
SIGNATURE_LENGTH = len(_signer("any key").get_signature(""))


def sign_reference(user_id: str | int, settings: Settings) -> str:
    """``client_reference_id`` naming ``user_id``, signed so that no payer can make one.

    Raises :class:`NotConfiguredError` without a key, ``ValueError`` for a user id
    Stripe would not keep (characters other than letters, digits, ``-``, ``_``, or
    too long once signed).
    """
    if settings.reference_secret is None:
        raise NotConfiguredError(["SECRET_KEY or STRIPE_REFERENCE_SECRET"])
    text = str(user_id)
    signature = _signer(settings.reference_secret).get_signature(text).decode("ascii")
    reference = f"{text}-{signature}"
    if not _REFERENCE_TEXT.fullmatch(text) or len(reference) > MAX_REFERENCE_LENGTH:
        raise ValueError(
            f"user id {text!r} cannot be a signed client_reference_id: Stripe keeps only "
            f"letters, digits, '-' and '_', up to {MAX_REFERENCE_LENGTH} characters"
        )
    return reference


def read_reference(reference: str, settings: Settings) -> str | None:
    """The user id a signed reference names; None when it is not one this app signed."""
    if settings.reference_secret is None:
        return None
    split = len(reference) - SIGNATURE_LENGTH - 1
    if split < 1 or reference[split] != "-":
        return None
    text, signature = reference[:split], reference[split + 1 :]
    signer = _signer(settings.reference_secret)
    return text if signer.verify_signature(text, signature) else None


def reference_reader(settings: Settings) -> ReferenceReader:
    """:func:`read_reference` with the app's settings, for the linking rule."""
    return lambda reference: read_reference(reference, settings)


def payment_link_url(url: str, user_id: str | int, settings: Settings) -> str:
    """A Payment Link URL whose Checkout names ``user_id`` by a signed reference (any
    ``client_reference_id`` already in the URL is replaced)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "client_reference_id"]
    query.append(("client_reference_id", sign_reference(user_id, settings)))
    return urlunsplit(parts._replace(query=urlencode(query)))
