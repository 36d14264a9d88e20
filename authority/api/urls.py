from django.urls import path

from authority.api.views import ApprovalApprove, ApprovalList, ApprovalReject, InteractionActions

urlpatterns = [
    path("interactions/<uuid:interaction_id>/actions/", InteractionActions.as_view(), name="interaction-actions"),
    path("approvals/", ApprovalList.as_view(), name="approvals"),
    path("approvals/<uuid:action_id>/approve/", ApprovalApprove.as_view(), name="approval-approve"),
    path("approvals/<uuid:action_id>/reject/", ApprovalReject.as_view(), name="approval-reject"),
]
