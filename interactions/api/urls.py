from django.urls import path
from rest_framework.routers import SimpleRouter

from interactions.api.views import InteractionViewSet, WebhookView

router = SimpleRouter()
router.register("interactions", InteractionViewSet, basename="interaction")
urlpatterns = router.urls + [
    # Any channel name reaches the view, so that an unknown one is a 400 naming `channel`, not a bare 404.
    path("webhooks/<str:channel>/<str:provider>/", WebhookView.as_view(), name="webhook"),
]
