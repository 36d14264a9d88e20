from django.db import models


class Customer(models.Model):
    """Write-side state row, kept in step with the customer stream. Holds no personal data."""

    id = models.UUIDField(primary_key=True)
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    merged_into = models.UUIDField(null=True, blank=True, help_text="set by a merge: this customer is read-only")

    def __str__(self) -> str:
        return str(self.id)


class CustomerIdentity(models.Model):
    """Write-side: which customer owns a normalised identity (see customers.identity).

    `key` is unique, so two touches from the same new number at the same
    moment cannot create two customers: the second insert fails and resolves
    to the first. Holds a keyed hash, never the identity itself: the clear
    value lives only in (encrypted) events.
    """

    key_hash = models.CharField(max_length=64, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="identities")
    kind = models.CharField(max_length=10)
    provider = models.CharField(max_length=20, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    moved_by_merge = models.BooleanField(
        default=False, help_text="moved by a merge at least once: touches through it are noted (IdentityTouch)")

    class Meta:
        verbose_name_plural = "customer identities"


class IdentityTouch(models.Model):
    """Write-side: which identity opened an interaction, noted only for identities a merge moved.

    Interactions record their customer, not the identity that brought them
    in; an unmerge needs the latter to give the source back the touches that
    arrived through its identities after the merge (customers.services.customer_unmerge).
    """

    interaction_id = models.UUIDField(primary_key=True)
    key_hash = models.CharField(max_length=64, db_index=True)
    customer_id = models.UUIDField(db_index=True, help_text="whom the identity led to when the interaction opened")
    created_at = models.DateTimeField(auto_now_add=True)


class MergeSuggestion(models.Model):
    """Write-side: two customers found sharing an identity, waiting for an admin to merge or dismiss.

    Recorded instead of acting when IDENTITY_AUTO_MERGE is "suggest"
    (customers.services.merge_suggestion_record). At most one pending
    suggestion per pair.
    """

    PENDING, MERGED, DISMISSED = "pending", "merged", "dismissed"
    target_id = models.UUIDField(help_text="the customer the identity leads to (kept if merged)")
    source_id = models.UUIDField(help_text="the customer that claimed it too (the duplicate if merged)")
    kind = models.CharField(max_length=10, help_text="which kind of identity they share (email, phone, handle)")
    status = models.CharField(max_length=10, default=PENDING,
                              choices=[(s, s) for s in (PENDING, MERGED, DISMISSED)], db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.CharField(max_length=150, blank=True, default="")

    class Meta:
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["target_id", "source_id"], condition=models.Q(status="pending"),
                                               name="merge_suggestion_pending_uniq")]

    def __str__(self) -> str:
        return f"{self.source_id} -> {self.target_id} ({self.kind}, {self.status})"


class CustomerProfile(models.Model):
    """Projection `customers.directory`: who the customer is and how active they are."""

    customer_id = models.UUIDField(primary_key=True)
    display_name = models.CharField(max_length=200)
    email = models.CharField(max_length=254, blank=True, null=True)
    phone = models.CharField(max_length=40, blank=True, null=True)
    preferred_channel = models.CharField(max_length=20, blank=True, default="")
    registered_at = models.DateTimeField()
    version = models.PositiveIntegerField(help_text="customer stream version this row reflects")
    event_count = models.PositiveIntegerField(default=0, help_text="events of any stream about this customer")
    last_event_at = models.DateTimeField(null=True, blank=True)
    erased = models.BooleanField(default=False)
    language = models.CharField(max_length=35, blank=True, default="", help_text="BCP 47 tag")
    contact_hours = models.JSONField(default=dict, blank=True, help_text='{"tz", "from", "to"}; {} when not given')
    vip_tier = models.CharField(max_length=10, default="none")
    tags = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True, default="")
    merged_into = models.UUIDField(null=True, blank=True, help_text="the customer this one was merged into")

    class Meta:
        ordering = ["-registered_at"]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.customer_id})"


class TimelineEntry(models.Model):
    """Projection `customers.timeline`: every event about a customer, across channels, in order.

    Personal fields (a message's text, an email address) are kept encrypted
    under the customer's data key, as in the event store: `key_id` names the
    customer whose key it is (the customer of the event, which a merge does
    not change). They are decrypted when read, so destroying the key on
    erasure makes them unreadable here too, with nothing to scrub.
    `personal_fields` lists which fields are personal.
    """

    position = models.BigIntegerField(primary_key=True)
    customer_id = models.UUIDField()
    event_id = models.UUIDField()
    event_type = models.CharField(max_length=200)
    stream_type = models.CharField(max_length=100)
    stream_id = models.UUIDField()
    occurred_at = models.DateTimeField()
    channel = models.CharField(max_length=20, blank=True, default="")
    actor = models.JSONField(default=dict)
    data = models.JSONField(default=dict)
    personal_fields = models.JSONField(default=list)
    key_id = models.UUIDField(null=True, blank=True, help_text="whose data key encrypts the personal fields")
    owner_id = models.UUIDField(null=True, blank=True, db_index=True,
                                help_text="whose entry it is before merges: the event's customer, or the customer "
                                          "an unmerge gave its interaction back to; customer_id is its chain's end")

    class Meta:
        ordering = ["occurred_at", "position"]
        # The API pages a customer's timeline by occurred time; position breaks ties.
        indexes = [models.Index(fields=["customer_id", "occurred_at", "position"], name="timeline_customer_time")]


class TimelineMerge(models.Model):
    """Projection `customers.timeline`: where a merged customer's timeline now lives.

    `target_id` is always the end of the chain (A merged into B, B into C:
    A -> C), so mapping an event's customer is one lookup. Rebuilt with the
    timeline; never written by commands.
    """

    source_id = models.UUIDField(primary_key=True)
    target_id = models.UUIDField(db_index=True)
    parent_id = models.UUIDField(null=True, blank=True, db_index=True,
                                 help_text="the customer it was merged into directly (an unmerge cuts the chain here)")


class TimelineReassigned(models.Model):
    """Projection `customers.timeline`: an interaction an unmerge gave back to `customer_id`.

    Its events keep naming the merge target (interactions record the
    customer they started with); the timeline shows them on this customer's
    (end of chain) instead, those already there and those still to come.
    """

    stream_id = models.UUIDField(primary_key=True)
    customer_id = models.UUIDField()
