"""Keys issued before scopes existed keep every scope: the migration that adds the column fills
existing rows with the field's default, which is every scope."""

from __future__ import annotations

import importlib

from django.db.migrations import AddField

from apikeys.models import SCOPES, APIKey

migration = importlib.import_module("apikeys.migrations.0002_key_scopes_expiry_rotation").Migration


def test_the_migration_gives_existing_keys_every_scope_and_no_expiry():
    added = {op.name: op.field for op in migration.operations if isinstance(op, AddField)}
    assert added["scopes"].default() == list(SCOPES) == ["recognize", "enrol", "manage"]
    assert added["expires_at"].null and not added["expires_at"].has_default()  # old rows: never expire
    assert APIKey._meta.get_field("scopes").default() == list(SCOPES)
