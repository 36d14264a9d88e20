"""The API's cursor pagination, with a client-chosen page size that has a ceiling.

`CappedCursorPagination` is DRF's DEFAULT_PAGINATION_CLASS. A list view's
own pagination subclasses it and sets only its `ordering` (and, if it must,
its own `page_size` or `max_page_size`):

    class NewestFirst(CappedCursorPagination):
        ordering = ("-created_at", "-id")

`?page_size=N` asks for N items per page: N above the ceiling
(API_MAX_PAGE_SIZE, 200 by default) gets the ceiling, as DRF does; a value that
is not a whole number of at least 1 is a 400 naming `page_size`, rather than
DRF's silent fall-back to the default (a client that typed `page_size=all`
should learn it did not get everything). A `?cursor=` that is not one we
handed out points at no page: 404 as DRF has it, but with a code and naming
`cursor`, so a client can tell it from a missing object.
"""

from __future__ import annotations

from django.conf import settings
from rest_framework.exceptions import NotFound
from rest_framework.pagination import CursorPagination

from contactcenter.parsers import InputRefused

DEFAULT_MAX_PAGE_SIZE = 200


class CappedCursorPagination(CursorPagination):
    page_size_query_param = "page_size"

    @property
    def max_page_size(self) -> int:
        # A property, so the setting is read per request (a subclass may still set a plain number).
        return int(getattr(settings, "API_MAX_PAGE_SIZE", DEFAULT_MAX_PAGE_SIZE))

    def get_page_size(self, request):
        if len(request.query_params.getlist(self.page_size_query_param)) > 1:
            raise InputRefused("give page_size once", code="invalid", field=self.page_size_query_param)
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None or raw == "":
            return self.page_size
        try:
            asked = int(raw)
        except ValueError:
            asked = 0
        if asked < 1:
            raise InputRefused(f"page_size must be a whole number from 1 to {self.max_page_size}",
                               code="invalid", field=self.page_size_query_param)
        return min(asked, self.max_page_size)

    def decode_cursor(self, request):
        if len(request.query_params.getlist(self.cursor_query_param)) > 1:
            raise InputRefused("give cursor once", code="invalid", field=self.cursor_query_param)
        try:
            return super().decode_cursor(request)
        except NotFound:
            raise InputRefused("no such page: use a `next` or `previous` link as given", code="invalid_cursor",
                               field=self.cursor_query_param, status=404) from None

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                # Below 1 is refused (400); above the ceiling gets the ceiling, so the schema sets no maximum.
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = f"items per page, at most {self.max_page_size} (more gets that many)"
            elif parameter["name"] == self.cursor_query_param:
                parameter["description"] = "where the page starts: from a `next` or `previous` link (404 otherwise)"
        return parameters
