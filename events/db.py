"""Raw access to Django's own database connection, for the hot paths of the event store."""

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

# The database is away (restarting, failing over) or broke the session: what the relay and the projectors wait
# out and retry, instead of exiting.
DATABASE_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


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
    conn = connection.connection
    if conn.prepare_threshold is None and settings.DB_PREPARED_STATEMENTS:
        # Django opens connections with prepared statements off, and then
        # psycopg ignores `prepare=True`. Django's own cursors bind on the
        # client and never prepare, so this changes nothing for the ORM.
        conn.prepare_threshold = 5
    with psycopg.Cursor(conn) as cur:
        yield cur
