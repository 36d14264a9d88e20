from django.urls import path

from followups.api.views import CallbackCancel, CallbackList

urlpatterns = [
    path("callbacks/", CallbackList.as_view(), name="callbacks"),
    path("callbacks/<uuid:callback_id>/cancel/", CallbackCancel.as_view(), name="callback-cancel"),
]
