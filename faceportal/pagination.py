"""Pages of a list route: `?page=` and `?page_size=` (at most 500), answered as
`{"count", "next", "previous", "results"}`."""

from __future__ import annotations

from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination


class PageSizePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class LargePagePagination(PageSizePagination):
    page_size = 100


def page_of(item_serializer: type[serializers.Serializer], *, name: str) -> type[serializers.Serializer]:
    """The serializer of one page of `item_serializer` results (named, for the OpenAPI schema)."""
    return type(name, (serializers.Serializer,), {
        "count": serializers.IntegerField(),
        "next": serializers.URLField(allow_null=True),
        "previous": serializers.URLField(allow_null=True),
        "results": item_serializer(many=True),
        "__module__": item_serializer.__module__,
    })
