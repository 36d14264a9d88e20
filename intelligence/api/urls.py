from django.urls import path

from intelligence.api.views import InteractionMood

urlpatterns = [
    path("interactions/<uuid:interaction_id>/mood/", InteractionMood.as_view(), name="interaction-mood"),
]
