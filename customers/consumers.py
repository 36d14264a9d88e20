"""WebSocket: live updates of one customer's timeline."""

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from customers.realtime import timeline_group


class CustomerTimelineConsumer(AsyncJsonWebsocketConsumer):
    """Sends {"type": "timeline.changed", "position": N, ...} when the timeline grows.

    Authenticate with ?token=<API token> (or the admin session). Anonymous
    connections are closed with code 4401. On (re)connect, read
    /api/v1/customers/{id}/timeline/ to catch up: pushes are hints, not the record.
    """

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        self.group = timeline_group(self.scope["url_route"]["kwargs"]["customer_id"])
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def timeline_changed(self, message):
        await self.send_json(message | {"type": "timeline.changed"})
