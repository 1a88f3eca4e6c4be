"""What ``flask billing check`` says about the signing secrets: the webhook's and the
thin-event endpoint's (never a secret itself, only how many)."""

from __future__ import annotations

from .config import Settings
from .findings import Finding
from .reports import plural


def webhook_secrets(
    secrets: tuple[str, ...], name: str = "STRIPE_WEBHOOK_SECRET", *, thin: bool = False
) -> Finding:
    """A signing secret setting; the snapshot one is required unless thin events are on."""
    if not secrets and thin:
        return Finding("missing", name, "the webhook answers 503; thin events only")
    if not secrets:
        return Finding("missing", name, "required: the webhook answers 503 without it", True)
    odd = sum(1 for secret in secrets if not secret.startswith("whsec_"))
    detail = plural(len(secrets), "signing secret")
    if odd:
        return Finding("invalid", name, f"{detail}, {odd} not starting with whsec_", True)
    return Finding("set", name, detail)


def thin_secrets(settings: Settings) -> Finding:
    """The thin-event endpoint's secrets; with them, it needs the API key to fetch."""
    name = "STRIPE_THIN_WEBHOOK_SECRET"
    if not settings.thin_webhook_secrets:
        return Finding("default", name, "none: thin events off (/stripe/thin-webhook: 503)")
    if not settings.api_key:
        return Finding("invalid", name, "set, but STRIPE_API_KEY is needed to fetch", True)
    return webhook_secrets(settings.thin_webhook_secrets, name)
