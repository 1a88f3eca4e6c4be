"""What the host asks of Stripe: reconciliation (sync), subscription changes and their
previews, invoices. Each answer Stripe gives is applied through the pipeline."""
