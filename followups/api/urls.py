from django.urls import path

from followups.api.views import CallbackCancel, CallbackList, EscalationAccept, EscalationList, InteractionEscalate

urlpatterns = [
    path("callbacks/", CallbackList.as_view(), name="callbacks"),
    path("callbacks/<uuid:callback_id>/cancel/", CallbackCancel.as_view(), name="callback-cancel"),
    path("interactions/<uuid:interaction_id>/escalate/", InteractionEscalate.as_view(), name="interaction-escalate"),
    path("escalations/", EscalationList.as_view(), name="escalations"),
    path("escalations/<uuid:escalation_id>/accept/", EscalationAccept.as_view(), name="escalation-accept"),
]
