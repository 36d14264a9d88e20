"""WebSocket: live updates of one customer's timeline."""

from channels.db import database_sync_to_async

from contactcenter import access, metrics
from contactcenter.realtime import StreamConsumer
from customers.realtime import timeline_group


class CustomerTimelineConsumer(StreamConsumer):
    """Sends {"type": "timeline.changed", "position": N, "stream", "seq", ...} when the timeline grows.

    Open with a ticket (POST /api/v1/ws-tickets/, then ?ticket=<ticket>); without a valid one the socket is
    closed with 4401. The welcome carries the stream's current `seq`; on it, and on any gap in `seq`, read
    /api/v1/customers/{id}/timeline/ (with its cursor) to catch up: pushes are hints, not the record.
    """

    async def connect(self):
        if await self.open_streams():
            metrics.socket_opened(self)  # cc_websocket_connections (docs/OPERATIONS.md)

    async def streams_for(self, user):
        customer_id = self.scope["url_route"]["kwargs"]["customer_id"]
        # Who may follow this timeline: whoever may read the customer over REST (contactcenter.access); anyone
        # else is closed with 4403 before accept, the attempt on the audit log.
        if not await database_sync_to_async(_may_follow)(self.scope, user, customer_id):
            return None
        return [timeline_group(customer_id)]

    def resync_for(self):
        return [f"/api/v1/customers/{self.scope['url_route']['kwargs']['customer_id']}/timeline/"]

    async def disconnect(self, code):
        metrics.socket_closed(self, code)
        await self.close_streams()

    async def timeline_changed(self, message):
        await self.send_json(message | {"type": "timeline.changed"})


def _may_follow(scope, user, customer_id) -> bool:
    if access.may_see_customer(user, customer_id):
        return True
    access.audit(scope, outcome="denied", action=f"WS {scope.get('path', '')}", object_type="customer",
                 object_id=customer_id, reason="outside the caller's scope", user=user)
    return False
