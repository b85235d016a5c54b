"""Signals other apps listen to, so organizations never imports them (faces owns its index)."""

from django.dispatch import Signal

# kwargs `organization`. `organization_created` is sent right after the row's own atomic block (not
# deferred: inside a caller's transaction the row is not committed yet); `organization_deleted` is
# sent from on_commit, once the deletion is committed.
organization_created = Signal()
organization_deleted = Signal()
