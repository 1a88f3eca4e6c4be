"""Blinker signals the host app subscribes to. The sender is always the Flask app.

Every signal is sent after the database commit, and only for what really happened:
a duplicate delivery sends nothing but ``webhook_received``.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import NamedSignal, Namespace

from .redact import describe_traceback

logger = logging.getLogger("flask_stripe_billing")

_signals = Namespace()


#: A verified event was recorded. Keyword arguments: ``event`` (StripeEvent),
#: ``status`` (how it was processed: processed, duplicate, ignored, stale,
#: unmatched, failed).
webhook_received = _signals.signal("webhook-received")


#: A user's plan changed. Keyword arguments: ``user_id``, ``old_plan``,
#: ``new_plan``, ``account`` (the new BillingAccount), ``event``.
plan_changed = _signals.signal("plan-changed")


#: A user's subscription status changed. Keyword arguments: ``user_id``,
#: ``old_status``, ``new_status``, ``account``, ``event``.
subscription_status_changed = _signals.signal("subscription-status-changed")


#: The seats of a user's account changed: its primary subscription's quantity
#: (``BillingAccount.seats``). Sent once per event id. Keyword arguments: ``user_id``,
#: ``old_seats``, ``new_seats`` (None: no subscription, or its quantity not known
#: yet), ``account``, ``event``.
seats_changed = _signals.signal("seats-changed")


#: The active Stripe Entitlements of a user's account changed
#: (``entitlements.active_entitlement_summary.updated``). Sent once per event id, only
#: for an account linked to the summary's customer. Keyword arguments: ``user_id``,
#: ``old_features``, ``new_features`` (frozensets of lookup keys), ``account``, ``event``.
features_changed = _signals.signal("features-changed")


#: An event could not be applied to any account: no account has its customer, or
#: the account it names is linked to another customer. It is kept ``unmatched``
#: for replay. Keyword arguments: ``customer_id``, ``reason`` (in words), ``event``.
customer_not_found = _signals.signal("customer-not-found")


#: Processing an event raised; the account was left untouched and the event is
#: recorded as failed. Keyword arguments: ``event``, ``error`` (the exception).
webhook_failed = _signals.signal("webhook-failed")


#: A Checkout session was created for a user. Keyword arguments: ``user_id``,
#: ``session_id``, ``price_id``; for a one-time product (mode ``payment``) also
#: ``product`` (its key) and ``quantity``.
checkout_session_created = _signals.signal("checkout-session-created")


#: A payment of an invoice failed (``invoice.payment_failed``); Stripe retries it
#: on its own schedule. Sent once per event id. Keyword arguments: ``user_id``,
#: ``account``, ``amount_due`` (smallest currency unit), ``currency``,
#: ``attempt_count``, ``next_payment_attempt`` (datetime, None when Stripe will not
#: retry), ``hosted_invoice_url`` (where the customer can pay), ``invoice_id``,
#: ``subscription_id`` (None for an invoice of no subscription), ``event``.
payment_failed = _signals.signal("payment-failed")


#: An invoice was paid (``invoice.paid``). Sent once per event id. Keyword
#: arguments: ``user_id``, ``account``, ``amount_paid`` (smallest currency unit),
#: ``currency``, ``hosted_invoice_url``, ``invoice_pdf``, ``invoice_id``,
#: ``subscription_id``, ``event``.
payment_succeeded = _signals.signal("payment-succeeded")


#: A payment needs the customer to act, e.g. 3-D Secure
#: (``invoice.payment_action_required``). Sent once per event id. Keyword
#: arguments: ``user_id``, ``account``, ``hosted_invoice_url``, ``invoice_id``,
#: ``event``.
payment_action_required = _signals.signal("payment-action-required")


#: A trial ends soon (``customer.subscription.trial_will_end``, three days
#: before). Sent once per event id. Keyword arguments: ``user_id``, ``account``,
#: ``subscription_id``, ``trial_end`` (datetime), ``event``.
trial_will_end = _signals.signal("trial-will-end")


#: Stripe found usage it could not apply to a meter (``billing.meter.error_report_triggered``,
#: sent by Stripe as the thin ``v1.billing.meter.error_report_triggered``). Sent once per
#: event id; it names a meter, not an account. Keyword arguments: ``meter_id``, ``summary``
#: (Stripe's words), ``error_count``, ``codes`` (each error type's code, e.g.
#: ``meter_event_customer_not_found``), ``errors`` (MeterErrorType values: code, count,
#: sample messages, the sampled meter events' identifiers), ``validation_start``,
#: ``validation_end`` (the window, datetimes), ``event``.
meter_errors = _signals.signal("meter-errors")

#: An account has a second live paid subscription to its plans (two tabs, an old
#: Checkout link, a retry after ``incomplete``): found in the transaction of the event
#: that made it live, sent once per duplicate. Keyword arguments: ``user_id``,
#: ``account``, ``kept_subscription_id`` (the older one), ``duplicate_subscription_id``
#: (the newer one, which ``STRIPE_BILLING_DUPLICATES = "cancel_newest_and_refund"``
#: cancels with a prorated refund), ``event``.
duplicate_subscription = _signals.signal("duplicate-subscription")


#: A change held until its payment went through (``payment_behavior=
#: "pending_if_incomplete"``) was applied (``customer.subscription.pending_update_applied``).
#: Sent once per event id. Keyword arguments: ``user_id``, ``account``,
#: ``subscription_id``, ``price_ids`` and ``quantity`` (the subscription's now), ``event``.
pending_update_applied = _signals.signal("pending-update-applied")


#: A held change expired unpaid and was dropped; the subscription stays as it was
#: (``customer.subscription.pending_update_expired``). Sent once per event id. Keyword
#: arguments: ``user_id``, ``account``, ``subscription_id``, ``pending_update`` (the
#: dropped ``PendingUpdate`` as the record kept it; None when not seen), ``event``.
pending_update_expired = _signals.signal("pending-update-expired")


#: Stripe refused a usage row for good (unknown meter, no such customer, bad value), or it
#: could not be sent within Stripe's duplicate window; the row is kept ``failed`` with the
#: reason and is not billed. Sent once per row, after the sender's commit. Keyword
#: arguments: ``user_id``, ``event_name``, ``value``, ``identifier``, ``reason`` (Stripe's
#: words), ``usage`` (the UsageRecord as stored).
usage_rejected = _signals.signal("usage-rejected")


#: A one-time purchase was paid (a payment-mode Checkout session, at once or when its
#: delayed payment succeeded). Sent once per purchase (the success-page sync and the
#: webhook that follows send it once between them). Keyword arguments: ``user_id``,
#: ``account``, ``purchase`` (PurchaseRecord: ``product``, ``quantity``, ``amount``,
#: ``currency``, ``status``, ...), ``event``. A host grants credits here.
purchase_completed = _signals.signal("purchase-completed")


#: More of a purchase was refunded (``charge.refunded``, ``refund.*``). Sent once per event
#: id that refunds more. Keyword arguments: ``user_id``, ``account``, ``purchase``,
#: ``amount_refunded`` (in total), ``refunded_now`` (by this event), ``fully_refunded``,
#: ``event``. A refund that came before its Checkout session is sent with the session's
#: event, once the account is known.
purchase_refunded = _signals.signal("purchase-refunded")


#: A purchase's dispute (chargeback or inquiry) opened or moved (``charge.dispute.*``).
#: Sent once per event id that changes its status. Keyword arguments: ``user_id``,
#: ``account``, ``purchase``, ``old_dispute_status``, ``dispute_status``
#: (``needs_response``, ``under_review``, ``won``, ``lost``, ...), ``event``. A lost dispute
#: ends what the purchase grants.
purchase_disputed = _signals.signal("purchase-disputed")


def send_safely(signal: NamedSignal, sender: Any, **kwargs: Any) -> None:
    """Send to each receiver in turn; one that raises is logged, the rest still run."""
    for receiver in signal.receivers_for(sender):
        try:
            receiver(sender, **kwargs)
        except Exception as error:
            logger.error(
                "Receiver of signal %r raised\n%s",
                signal.name,
                describe_traceback(error),
                extra={"signal": signal.name},
            )
