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
should learn it did not get everything).
"""

from __future__ import annotations

from django.conf import settings
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
