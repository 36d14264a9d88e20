"""WebSocket URL patterns of every app."""

from django.urls import path

from customers.consumers import CustomerTimelineConsumer

websocket_urlpatterns = [
    path("ws/customers/<uuid:customer_id>/timeline/", CustomerTimelineConsumer.as_asgi()),
]
