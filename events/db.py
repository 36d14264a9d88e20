"""Raw access to Django's own database connection, for the hot paths of the event store."""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection


@contextmanager
def raw_cursor() -> Iterator[psycopg.Cursor]:
    """A server-side-binding psycopg cursor on Django's connection (so: in the current transaction).

    Django's own cursors bind parameters on the client: every value, and
    every element of an array, is quoted into the SQL text, and PostgreSQL
    parses and plans the statement anew each time. For the statements the
    event store runs thousands of times a second that cost more than the
    work itself; here parameters travel separately and `prepare=True`
    statements are planned once per connection. (`execute(..., binary=True)`
    has results sent in binary, which loads timestamps and uuids faster.)
    """
    connection.ensure_connection()
    with psycopg.Cursor(connection.connection) as cur:
        yield cur
