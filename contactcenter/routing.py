"""WebSocket URL patterns of every app."""

from django.urls import path

from customers.consumers import CustomerTimelineConsumer
from routing.consumers import AgentConsumer, WallboardConsumer

websocket_urlpatterns = [
    path("ws/customers/<uuid:customer_id>/timeline/", CustomerTimelineConsumer.as_asgi()),
    path("ws/agent/", AgentConsumer.as_asgi()),
    path("ws/wallboard/", WallboardConsumer.as_asgi()),
]
