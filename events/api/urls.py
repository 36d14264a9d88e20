from django.urls import path

from events.api.views import EventListView, StreamView

urlpatterns = [
    path("events/", EventListView.as_view(), name="event-list"),
    path("events/streams/<uuid:stream_id>/", StreamView.as_view(), name="event-stream"),
]
