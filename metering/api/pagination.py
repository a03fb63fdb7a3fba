from rest_framework.exceptions import NotFound
from rest_framework.pagination import Cursor
from rest_framework.response import Response

from core.api.pagination import NewestFirstCursorPagination


class EventCursorPagination(NewestFirstCursorPagination):
    """Newest first by row id (keyset: no COUNT, no OFFSET).

    With a view ``row_filter`` (``?meter=``: its filter and property are evaluated in Python
    with the meter's exact semantics) rows are scanned newest first, in id order, until a page
    is full or ``scan_limit`` rows were examined; ``next`` then resumes after the last row
    examined, so a page can be short (even empty) while ``next`` is set, and each request's
    work stays bounded however rare the matching events are.
    """

    scan_limit = 5000
    _chunk = 500

    def paginate_queryset(self, queryset, request, view=None):
        keep = getattr(view, "row_filter", None)
        self._filtered = keep is not None
        if not self._filtered:
            return super().paginate_queryset(queryset, request, view)
        self.request = request
        self.page_size = self.get_page_size(request)
        self.base_url = request.build_absolute_uri()
        cursor = self.decode_cursor(request)
        qs = queryset.order_by("-id")
        if cursor is not None and cursor.position is not None:
            try:
                qs = qs.filter(id__lt=int(cursor.position))
            except ValueError as exc:
                raise NotFound(self.invalid_cursor_message) from exc
        page, scanned, last_id, exhausted = [], 0, None, False
        while len(page) < self.page_size and scanned < self.scan_limit:
            chunk_qs = qs if last_id is None else qs.filter(id__lt=last_id)
            chunk = list(chunk_qs[: self._chunk])
            for row in chunk:
                scanned += 1
                last_id = row.id
                if keep(row):
                    page.append(row)
                    if len(page) == self.page_size:
                        break
            if len(chunk) < self._chunk and (not chunk or last_id == chunk[-1].id):
                exhausted = True
                break
        self.page = page
        self._next_position = None if exhausted else last_id
        return page

    def get_next_link(self):
        if not self._filtered:
            return super().get_next_link()
        if self._next_position is None:
            return None
        return self.encode_cursor(Cursor(offset=0, reverse=False, position=self._next_position))

    def get_previous_link(self):
        return None if self._filtered else super().get_previous_link()

    def get_paginated_response(self, data):
        return Response(
            {"results": data, "next": self.get_next_link(), "previous": self.get_previous_link()}
        )
