from rest_framework.pagination import CursorPagination, PageNumberPagination
from rest_framework.response import Response


class ResultsPagination(PageNumberPagination):
    """`{"results": [...], "next": ..., "previous": ..., "count": n}` (API.md)."""

    page_size_query_param = "page_size"
    max_page_size = 500

    def get_paginated_response(self, data):
        return Response(
            {
                "results": data,
                "next": self.get_next_link(),
                "previous": self.get_previous_link(),
                "count": self.page.paginator.count,
            }
        )

    def get_paginated_response_schema(self, schema):
        schema = super().get_paginated_response_schema(schema)
        return schema


class NewestFirstCursorPagination(CursorPagination):
    """Constant-time paging over large tables: no COUNT, no OFFSET."""

    ordering = "-id"
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_paginated_response(self, data):
        return Response(
            {"results": data, "next": self.get_next_link(), "previous": self.get_previous_link()}
        )
