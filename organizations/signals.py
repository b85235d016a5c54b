"""What happens to an organisation, for the apps that build on it: organizations never imports them.

Each signal carries `organization`. When it is sent is part of its contract:
- `organization_created`: right after the row's own atomic block (not deferred: inside a caller's
  transaction the row is not committed yet).
- `organization_deactivated`: inside the deactivating transaction, so a receiver can put its own
  writes in it or defer work to its commit (`transaction.on_commit`).
- `organization_reactivated`: inside the reactivating transaction, like `organization_deactivated`.
- `organization_deleting`: inside the deleting transaction, before the rows go, so a receiver can
  still read what the tenant owns (e.g. its keys' prefixes).
- `organization_deleted`: from on_commit, once the deletion is committed (a rolled-back delete
  sends nothing).
"""

from django.dispatch import Signal

organization_created = Signal()
organization_deactivated = Signal()
organization_reactivated = Signal()
organization_deleting = Signal()
organization_deleted = Signal()
