"""Webhooks: an organisation's subscriptions to recognition and gallery events, delivered signed,
persisted and retried outside every request and frame (docs/WEBHOOKS.md).

Other code fires an event with `recognition.webhooks.services.webhook_event_fire`.
"""
