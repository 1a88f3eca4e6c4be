"""Errors are the package's own, without HTTP; only the blueprint maps them to answers."""

from __future__ import annotations

import inspect

import pytest
from flask import Flask

from flask_stripe_billing import BillingError, errors
from flask_stripe_billing.web import http as views

KINDS = [
    kind
    for _, kind in inspect.getmembers(errors, inspect.isclass)
    if issubclass(kind, BillingError) and kind is not BillingError
]


def test_every_kind_of_error_has_its_own_http_answer() -> None:
    assert KINDS
    assert set(KINDS) == set(views.HTTP_ANSWERS)


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.__name__)
def test_errors_carry_no_http_status(kind: type[BillingError]) -> None:
    assert not hasattr(kind, "status_code")
    assert not hasattr(kind, "to_dict")


def test_the_answer_is_the_json_error_shape() -> None:
    class Unplanned(BillingError):
        """A kind of error the blueprint has no answer for."""

    with Flask(__name__).test_request_context():
        conflict, status = views.error_response(errors.ConflictError("taken", {"why": 1}))
        other, other_status = views.error_response(Unplanned("?"))

    assert (status, conflict.get_json()) == (
        409,
        {"error": "conflict", "message": "taken", "details": {"why": 1}},
    )
    assert (other_status, other.get_json()["error"]) == (500, "internal_error")
