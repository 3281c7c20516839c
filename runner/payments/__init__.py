"""Stripe Checkout: creating sessions, recording webhooks, the Stripe gateway."""
