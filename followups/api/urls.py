from django.urls import path

from followups.api.views import (
    CallbackCancel,
    CallbackList,
    EscalationAccept,
    EscalationList,
    FollowUpCancel,
    FollowUpDone,
    FollowUpList,
    InteractionEscalate,
    PromiseList,
)

urlpatterns = [
    path("callbacks/", CallbackList.as_view(), name="callbacks"),
    path("callbacks/<uuid:callback_id>/cancel/", CallbackCancel.as_view(), name="callback-cancel"),
    path("interactions/<uuid:interaction_id>/escalate/", InteractionEscalate.as_view(), name="interaction-escalate"),
    path("escalations/", EscalationList.as_view(), name="escalations"),
    path("escalations/<uuid:escalation_id>/accept/", EscalationAccept.as_view(), name="escalation-accept"),
    path("followups/", FollowUpList.as_view(), name="followups"),
    path("followups/<uuid:followup_id>/done/", FollowUpDone.as_view(), name="followup-done"),
    path("followups/<uuid:followup_id>/cancel/", FollowUpCancel.as_view(), name="followup-cancel"),
    path("promises/", PromiseList.as_view(), name="promises"),
]
