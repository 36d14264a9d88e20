from django.urls import path
from rest_framework.routers import SimpleRouter

from routing.api.views import AgentViewSet, InteractionRoutingView, QueueViewSet, SimulationViewSet

router = SimpleRouter()
router.register("agents", AgentViewSet, basename="agent")
router.register("queues", QueueViewSet, basename="queue")
router.register("routing/simulations", SimulationViewSet, basename="simulation")
urlpatterns = router.urls + [
    path("interactions/<uuid:interaction_id>/routing/", InteractionRoutingView.as_view(), name="interaction-routing"),
]
