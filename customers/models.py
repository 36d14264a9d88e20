from django.db import models


class Customer(models.Model):
    """Write-side state row, kept in step with the customer stream. Holds no personal data."""

    id = models.UUIDField(primary_key=True)
    version = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    erased_at = models.DateTimeField(null=True, blank=True)

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

    class Meta:
        verbose_name_plural = "customer identities"


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

    class Meta:
        ordering = ["-registered_at"]

    def __str__(self) -> str:
        return f"{self.display_name} ({self.customer_id})"


class TimelineEntry(models.Model):
    """Projection `customers.timeline`: every event about a customer, across channels, in order.

    Personal fields are not copied here (their names are listed instead); the
    profile holds them, so an erasure has one place to scrub.
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

    class Meta:
        ordering = ["position"]
        indexes = [models.Index(fields=["customer_id", "position"], name="timeline_customer_pos")]
