"""GET /api/v1/customers/{id}/export/: the subject-access export (docs/PRIVACY.md).

For admins (staff) and holders of `contactcenter.export_personal_data` (the
`compliance` group): anyone else gets 404, as for a customer that does not
exist, so a customer's existence does not leak, and the attempt is on the
audit log. Every export is on the audit log too.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from contactcenter import access
from contactcenter.api import ErrorSerializer
from customers.export import customer_export
from customers.models import Customer

EXPORT_PERMISSION = "contactcenter.export_personal_data"


class MayExportPersonalData(BasePermission):
    """Staff, or the permission `contactcenter.export_personal_data`; anyone else: 404 and an audit entry.

    Replaces the default InScope check on this view: an export holder's job is
    any customer, whoever served them.
    """

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (access.is_admin(user) or user.has_perm(EXPORT_PERMISSION)):
            access.deny(request, action="customers.export", object_type="customer",
                        object_id=view.kwargs.get("customer_id", ""), reason="no permission to export personal data")
        return True


class ProfileOutput(serializers.Serializer):
    display_name = serializers.CharField()
    email = serializers.CharField(allow_null=True)
    phone = serializers.CharField(allow_null=True)
    vip_tier = serializers.CharField()
    tags = serializers.ListField(child=serializers.CharField())
    notes = serializers.CharField(allow_blank=True)
    registered_at = serializers.DateTimeField()
    last_event_at = serializers.DateTimeField(allow_null=True)


class PreferencesOutput(serializers.Serializer):
    preferred_channel = serializers.CharField(allow_blank=True)
    language = serializers.CharField(allow_blank=True)
    contact_hours = serializers.DictField()


class IdentityOutput(serializers.Serializer):
    kind = serializers.CharField()
    value = serializers.CharField()
    provider = serializers.CharField(allow_blank=True)
    linked_at = serializers.DateTimeField()
    linked = serializers.BooleanField(help_text="it still leads to this customer")


class TimelineItemOutput(serializers.Serializer):
    occurred_at = serializers.DateTimeField()
    channel = serializers.CharField(allow_blank=True)
    event_type = serializers.CharField()
    stream_type = serializers.CharField()
    stream_id = serializers.UUIDField()
    actor = serializers.DictField()
    data = serializers.DictField(help_text="the event's fields, personal ones decrypted")


class InteractionItemOutput(serializers.Serializer):
    id = serializers.UUIDField()
    case_id = serializers.UUIDField()
    channel = serializers.CharField()
    direction = serializers.CharField()
    status = serializers.CharField()
    queue = serializers.CharField(allow_null=True)
    agent_id = serializers.CharField(allow_null=True)
    started_at = serializers.DateTimeField()
    answered_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    end_reason = serializers.CharField(allow_null=True)
    dispositions = serializers.ListField(child=serializers.CharField())


class AccessOutput(serializers.Serializer):
    at = serializers.DateTimeField()
    username = serializers.CharField(allow_blank=True)
    action = serializers.CharField()
    outcome = serializers.CharField()


class CustomerExportOutput(serializers.Serializer):
    """Everything held about one person. An erased customer's: `erased` true and every section empty."""

    customer_id = serializers.UUIDField()
    exported_at = serializers.DateTimeField()
    erased = serializers.BooleanField()
    erased_at = serializers.DateTimeField(allow_null=True)
    merged_into = serializers.UUIDField(allow_null=True, help_text="merged into that customer: export it too")
    merged_from = serializers.ListField(child=serializers.UUIDField(),
                                        help_text="customers merged into this one, whose data is included")
    profile = ProfileOutput(allow_null=True)
    preferences = PreferencesOutput(allow_null=True)
    identities = IdentityOutput(many=True)
    timeline = TimelineItemOutput(many=True)
    interactions = InteractionItemOutput(many=True)
    callbacks = serializers.ListField(child=serializers.DictField(), help_text="with the note promised")
    followups = serializers.ListField(child=serializers.DictField())
    escalations = serializers.ListField(child=serializers.DictField())
    actions = serializers.ListField(child=serializers.DictField(), help_text="refunds, credits... done for them")
    surveys = serializers.ListField(child=serializers.DictField(), help_text="scores and comment")
    incident_reports = serializers.ListField(child=serializers.DictField(),
                                             help_text="about their contacts, as filed and amended")
    script_runs = serializers.ListField(child=serializers.DictField(), help_text="their answers at each step")
    access_log = AccessOutput(many=True, help_text="who read their data (the audit log)")


class CustomerExportView(APIView):
    permission_classes = [IsAuthenticated, MayExportPersonalData]

    @extend_schema(
        operation_id="customer_export",
        responses={200: CustomerExportOutput,
                   404: OpenApiResponse(ErrorSerializer, description="no such customer, or not yours to export")},
    )
    def get(self, request, customer_id):
        """Subject-access export: everything held about the customer as one JSON document (admins and
        `contactcenter.export_personal_data` only). Each export is written to the audit log. An erased
        customer's export is `erased: true` with every section empty."""
        doc = customer_export(Customer.objects.get(id=customer_id).id)  # DoesNotExist -> 404
        access.audit(request, outcome="read", action="customers.export", object_type="customer",
                     object_id=customer_id)
        return Response(CustomerExportOutput(doc).data)
