"""Permissions that belong to no app: staff routes are the project's, not one room's."""

from __future__ import annotations

from rest_framework import permissions


class IsStaff(permissions.BasePermission):
    message = "Staff credentials are required."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and request.user.is_staff)
