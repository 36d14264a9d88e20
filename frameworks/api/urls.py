from django.urls import path

from frameworks.api.views import InteractionScript, InteractionScriptStep

urlpatterns = [
    path("interactions/<uuid:interaction_id>/script/", InteractionScript.as_view(), name="interaction-script"),
    path("interactions/<uuid:interaction_id>/script/steps/", InteractionScriptStep.as_view(),
         name="interaction-script-step"),
]
