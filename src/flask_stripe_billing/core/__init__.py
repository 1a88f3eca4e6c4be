"""The pure core: Stripe's JSON read into typed facts, what a subscription means, and the
decision rules (event + records → change). Imports no Flask, database, HTTP or Stripe
client, so the rules can be tested exhaustively on their own."""
