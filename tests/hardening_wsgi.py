"""The host app test_hardening.py runs under gunicorn, as ``hardening_wsgi:app``.

Not a test module (pytest does not collect it). Its database is the SQLite file
named by ``HARDENING_DATABASE_URL``, so the test can read what the server wrote.
"""

from __future__ import annotations

import os

from conftest import build_host

host = build_host({"SQLALCHEMY_DATABASE_URI": os.environ["HARDENING_DATABASE_URL"]})
host.add_user(1, stripe_customer_id="cus_test")
app = host.app
