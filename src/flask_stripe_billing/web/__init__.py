"""The Flask edge: the blueprint and its routes (webhooks, Checkout, portal, management),
gates for the host's views, template buttons."""
