"""The routing configuration's version: bumped in the same transaction as any change routing caches.

Routing workers keep agents' skills, languages and capacity, queues'
policies and the agents' ranking per queue in memory between dispatch
passes, and reload them when this number moves. Statement triggers bump it
on every change to those tables, however it is made (admin, API, SQL), and
it commits with the change, so a worker never caches a state older than the
version it read. A sequence feeds it, so it never repeats, even after the
table is emptied (a test database flush); no row: no caching.
"""

from django.db import migrations

TABLES = {
    "routing_agentskill": "INSERT OR UPDATE OR DELETE OR TRUNCATE",
    "routing_agent": "INSERT OR DELETE OR TRUNCATE OR UPDATE OF user_id, languages, capacity, voice_with_others",
    "routing_queue": "INSERT OR UPDATE OR DELETE OR TRUNCATE",
    "routing_queueskill": "INSERT OR UPDATE OR DELETE OR TRUNCATE",
    "auth_user": "UPDATE OF username",
}

FORWARD = """
CREATE SEQUENCE routing_config_seq;
CREATE TABLE routing_configversion (id smallint PRIMARY KEY CHECK (id = 1), n bigint NOT NULL);
INSERT INTO routing_configversion VALUES (1, nextval('routing_config_seq'));
CREATE FUNCTION routing_config_bump() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO routing_configversion VALUES (1, nextval('routing_config_seq'))
    ON CONFLICT (id) DO UPDATE SET n = excluded.n;
    RETURN NULL;
END $$;
""" + "".join(
    f"CREATE TRIGGER {table}_routing_config AFTER {events} ON {table} "
    "FOR EACH STATEMENT EXECUTE FUNCTION routing_config_bump();\n"
    for table, events in TABLES.items()
)

BACKWARD = "".join(f"DROP TRIGGER IF EXISTS {table}_routing_config ON {table};\n" for table in TABLES) + """
DROP FUNCTION IF EXISTS routing_config_bump();
DROP TABLE IF EXISTS routing_configversion;
DROP SEQUENCE IF EXISTS routing_config_seq;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("routing", "0002_agent_state"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
