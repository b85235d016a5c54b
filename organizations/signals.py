"""Signals other apps listen to, so organizations never imports them (faces owns its index)."""

from django.dispatch import Signal

# Sent after an organisation row is created or deleted (inside on_commit): kwargs `organization`.
organization_created = Signal()
organization_deleted = Signal()
