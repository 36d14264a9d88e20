"""Tables of the event store, the outbox, the relay and the projection runtime.

The store writes these with hand-written SQL (see store.py) because append is
the hottest path in the product; the models exist for migrations, the admin
and reads.
"""

from django.db import models
from django.db.models.functions import Now


class Event(models.Model):
    """One stored domain event. Append-only: never updated, never deleted."""

    position = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField(unique=True)
    # No index on event_type: every append would pay for it, and nothing
    # reads by type alone on the hot path (projections read by position).
    event_type = models.CharField(max_length=200)
    schema_version = models.PositiveSmallIntegerField()
    stream_type = models.CharField(max_length=100)
    stream_id = models.UUIDField()
    stream_version = models.PositiveIntegerField()
    customer_id = models.UUIDField(null=True, blank=True, db_index=True)
    occurred_at = models.DateTimeField()
    recorded_at = models.DateTimeField(db_default=Now())
    correlation_id = models.UUIDField(null=True, blank=True)
    causation_id = models.UUIDField(null=True, blank=True)
    actor = models.JSONField(default=dict)
    channel = models.CharField(max_length=20, blank=True, default="")
    data = models.JSONField(default=dict)

    class Meta:
        db_table = "events_event"
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["stream_id", "stream_version"], name="events_stream_version_uniq"),
        ]
        indexes = [
            # Partial: events appended without a correlation id cost no index write.
            models.Index(fields=["correlation_id"], name="events_correlation_idx",
                         condition=models.Q(correlation_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.event_type} {self.stream_type}/{self.stream_id}@{self.stream_version}"


class OutboxEntry(models.Model):
    """An event committed but not yet published to Kafka.

    Written in the same transaction as the event; the relay deletes it once
    Kafka has acknowledged the message. A row whose transaction commits late
    simply becomes visible late and is published then: nothing pages by a
    bare sequence number, so nothing is skipped.
    """

    position = models.BigIntegerField(primary_key=True)
    enqueued_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "events_outbox"
        verbose_name = "outbox entry"
        verbose_name_plural = "outbox (not yet on Kafka)"


class CustomerKey(models.Model):
    """The per-customer data key that encrypts personal data inside events.

    The key is stored wrapped (encrypted) with the key-encryption key from
    settings. Erasing the customer destroys it; the events stay, unreadable.
    """

    customer_id = models.UUIDField(primary_key=True)
    wrapped_key = models.BinaryField(null=True)
    created_at = models.DateTimeField(db_default=Now())
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "events_customer_key"


class RelayState(models.Model):
    """Singleton row of the relay: which incarnation of the broker it publishes to."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=1)
    # Bumped whenever the relay finds a new incarnation of the topic (a broker
    # that came back empty). Projectors compare it to theirs and start over
    # from offset 0 of the new log.
    broker_epoch = models.PositiveIntegerField(default=0)
    # The incarnation of the topic the relay publishes to. A topic that is
    # recreated (by us, by someone else, or auto-created by the broker after a
    # restart) gets a new id, and that is what starts a new epoch.
    topic = models.CharField(max_length=249, blank=True, default="")
    topic_id = models.CharField(max_length=64, blank=True, default="")
    published_total = models.BigIntegerField(default=0)
    last_published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "events_relay_state"


class RelayPartition(models.Model):
    """The offset of the last message the relay had acknowledged, per partition (for lag)."""

    partition = models.PositiveIntegerField(primary_key=True)
    epoch = models.PositiveIntegerField(default=0)
    last_offset = models.BigIntegerField(default=-1)

    class Meta:
        db_table = "events_relay_partition"


class ProjectionState(models.Model):
    LIVE = "live"
    REBUILDING = "rebuilding"

    name = models.CharField(max_length=100, primary_key=True)
    status = models.CharField(max_length=20, default=LIVE, choices=[(LIVE, LIVE), (REBUILDING, REBUILDING)])
    broker_epoch = models.PositiveIntegerField(default=0)
    applied_total = models.BigIntegerField(default=0)
    last_applied_at = models.DateTimeField(null=True, blank=True)
    last_event_recorded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "events_projection_state"

    def __str__(self) -> str:
        return self.name


class ProjectionCheckpoint(models.Model):
    """Next Kafka offset to read, per projection and partition (resume point only)."""

    projection = models.CharField(max_length=100)
    partition = models.PositiveIntegerField()
    next_offset = models.BigIntegerField(default=0)

    class Meta:
        db_table = "events_projection_checkpoint"
        constraints = [
            models.UniqueConstraint(fields=["projection", "partition"], name="events_checkpoint_uniq"),
        ]


class ProjectionStream(models.Model):
    """Highest stream version a projection has applied: what makes redelivery harmless.

    Written in the same transaction as the projection's own writes, so an
    event is applied once however often Kafka (or a republish after a broker
    reset) delivers it.
    """

    pk = models.CompositePrimaryKey("projection", "stream_id")
    projection = models.CharField(max_length=100)
    stream_id = models.UUIDField()
    version = models.PositiveIntegerField()

    class Meta:
        db_table = "events_projection_stream"


class DeadLetter(models.Model):
    """An event a projection failed to apply; the stream went on without it."""

    projection = models.CharField(max_length=100, db_index=True)
    position = models.BigIntegerField()
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=200)
    stream_id = models.UUIDField()
    error = models.TextField()
    traceback = models.TextField(blank=True)
    failed_at = models.DateTimeField(db_default=Now())
    attempts = models.PositiveIntegerField(default=1)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "events_dead_letter"
        ordering = ["-failed_at"]
        constraints = [
            models.UniqueConstraint(fields=["projection", "event_id"], name="events_dead_letter_uniq"),
        ]

    def __str__(self) -> str:
        return f"{self.projection}: {self.event_type} #{self.position}"


class StreamKey(models.Model):
    """A data key of one stream's own, instead of its customer's (events.crypto, docs/PRIVACY.md).

    Given to an interaction that opens through an identity a merge moved: it is filed under the merge's
    target, but an unmerge may give it back to the source, and then erasing the source must shred it
    without touching the target's data. Its personal fields are encrypted under `key_id` (a row of
    events_customer_key, destroyed like a customer's); `owner_id` is the customer whose erasure destroys it
    (the target, until an unmerge gives the stream back to the source).
    """

    stream_id = models.UUIDField(primary_key=True)
    key_id = models.UUIDField(unique=True)
    owner_id = models.UUIDField(db_index=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        db_table = "events_stream_key"
