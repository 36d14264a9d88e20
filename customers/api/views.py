"""Customer endpoints: thin views that validate, call one service and serialize."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied
from rest_framework.response import Response

from contactcenter import access
from contactcenter.access import IsAdmin
from contactcenter.api import UUID_PATH_PATTERN, ErrorSerializer, command_meta, valid
from contactcenter.pagination import CappedCursorPagination
from customers import selectors, services
from customers.api.serializers import (
    AsOfQuery,
    ChangeCustomerInput,
    CommandOutput,
    CustomerContextOutput,
    CustomerProfileOutput,
    EraseCustomerInput,
    MergeCustomerInput,
    RegisterCustomerInput,
    TimelineEntryOutput,
    TimelineQuery,
    UnmergeCustomerInput,
    timeline_json,
)
from customers.models import Customer
from history import asof

CONFLICT = OpenApiResponse(ErrorSerializer, description="stale expected_version, or the customer was erased or merged")


class DirectoryPagination(CappedCursorPagination):
    ordering = ("-registered_at", "customer_id")


class TimelinePagination(CappedCursorPagination):
    # Occurred time, not arrival: events of different channels arrive out of
    # order. The position breaks ties, so the order (and the cursor) is stable.
    ordering = ("occurred_at", "position")
    page_size = 100  # ?page_size= up to API_MAX_PAGE_SIZE


class CustomerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Customers: register and change them (commands), read their profile and timeline (projections).

    Reads come from projections, a few milliseconds behind the commands.
    """

    serializer_class = CustomerProfileOutput
    pagination_class = DirectoryPagination
    lookup_field = "customer_id"
    lookup_value_converter = "uuid"
    lookup_value_regex = UUID_PATH_PATTERN  # anything else is a 404 at the router, never a query

    def get_queryset(self):
        customers = selectors.customer_list()
        visible = access.customers_visible_ids(self.request.user)  # agents: those they serve or have served
        return customers if visible is None else customers.filter(customer_id__in=visible)

    @extend_schema(request=RegisterCustomerInput, responses={201: CommandOutput, 403: ErrorSerializer})
    def create(self, request):
        if not access.may_command(request.user):
            raise PermissionDenied("your role reads customers; it does not register them")
        data = valid(RegisterCustomerInput, request.data)
        result = services.customer_register(meta=command_meta(request), **data)
        return Response(CommandOutput(result).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ChangeCustomerInput, responses={200: CommandOutput, 409: CONFLICT})
    def partial_update(self, request, customer_id=None):
        data = valid(ChangeCustomerInput, request.data)
        result = services.customer_change_details(customer_id=self._customer_id(customer_id), meta=command_meta(request), **data)
        return Response(CommandOutput(result).data)

    @extend_schema(request=EraseCustomerInput, responses={200: CommandOutput})
    @action(detail=True, methods=["post"], permission_classes=[IsAdmin])
    def erase(self, request, customer_id=None):
        """Erase the customer's personal data everywhere (staff only). Idempotent."""
        data = valid(EraseCustomerInput, request.data)
        result = services.customer_erase(customer_id=self._customer_id(customer_id), meta=command_meta(request), **data)
        return Response(CommandOutput(result).data)

    @extend_schema(request=MergeCustomerInput, responses={200: CommandOutput, 409: CONFLICT})
    @action(detail=True, methods=["post"], permission_classes=[IsAdmin])
    def merge(self, request, customer_id=None):
        """Merge a duplicate (`source_id`) into this customer (staff only); the source becomes read-only."""
        data = valid(MergeCustomerInput, request.data)
        result = services.customer_merge(customer_id=self._customer_id(customer_id), meta=command_meta(request), **data)
        return Response(CommandOutput(result).data)

    @extend_schema(
        request=UnmergeCustomerInput,
        responses={200: CommandOutput, 400: ErrorSerializer, 403: ErrorSerializer,
                   409: OpenApiResponse(ErrorSerializer, description="`not_merged`: the source is not merged into "
                                        "this customer directly; or a stale expected_version, or an erased side")},
    )
    @action(detail=True, methods=["post"], permission_classes=[IsAdmin])
    def unmerge(self, request, customer_id=None):
        """Undo the merge of `source_id` into this customer (staff only): both are their own customers again.

        The source gets back the identities the merge moved, its history, and the contacts that arrived after
        the merge through one of those identities (docs/HISTORY.md). Both customers' versions move.
        """
        data = valid(UnmergeCustomerInput, request.data)
        result = services.customer_unmerge(customer_id=self._customer_id(customer_id), meta=command_meta(request),
                                           **data)
        return Response(CommandOutput(result).data)

    @extend_schema(parameters=[TimelineQuery], responses={200: TimelineEntryOutput(many=True), 400: ErrorSerializer})
    @action(detail=True, methods=["get"], pagination_class=TimelinePagination)
    def timeline(self, request, customer_id=None):
        """Everything that happened with this customer, on every channel, by occurred time (cursor paginated).

        Includes the history of customers merged into this one. Incident reports and quality evaluations show
        as entries with `data` {"withheld": true, "read_at": <their endpoint>}: read them there, where their own
        readers are checked and each read is on record.
        """
        customer_id = self._customer_id(customer_id)
        query = valid(TimelineQuery, request.query_params)
        as_of = query.pop("as_of", None)
        if as_of is None:
            page = selectors.timeline_open(selectors.timeline_withhold(
                self.paginate_queryset(selectors.timeline_list(customer_id, **query))))
        else:  # straight from the event store, decrypted with today's keys (erased stays erased)
            page = selectors.timeline_withhold(asof.timeline_entries(
                self.paginate_queryset(asof.timeline_as_of(customer_id, as_of, **query))))
        for entry in page:
            if entry.event_type == "interactions.RecordingAttached":  # who read a recording reference is on record
                access.audit(request, outcome="read", action="customers.timeline", object_type="recording",
                             object_id=entry.stream_id)
        return self.get_paginated_response([timeline_json(entry) for entry in page])

    @extend_schema(parameters=[AsOfQuery], responses={200: CustomerContextOutput, 400: ErrorSerializer,
                                                      404: ErrorSerializer})
    @action(detail=True, methods=["get"], pagination_class=None)
    def context(self, request, customer_id=None):
        """What an agent needs on pick-up: profile, preferences, open work, last contacts, repeat contact.

        `?as_of=` gives it as it stood then, folded from the events recorded up to that instant (404 if the
        customer was not registered yet); sentiment and open promises are not time-travelled (empty).
        """
        customer_id = self._customer_id(customer_id)
        as_of = valid(AsOfQuery, request.query_params).get("as_of")
        if as_of is not None:
            context = asof.customer_context_as_of(customer_id, as_of)
        else:
            context = selectors.customer_context(customer_id)
        return Response(CustomerContextOutput(context).data)

    def _customer_id(self, pk):
        return get_object_or_404(Customer, id=pk).id
