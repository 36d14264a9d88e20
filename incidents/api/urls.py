from django.urls import path

from incidents.api.views import IncidentAmend, IncidentDetail, IncidentList

urlpatterns = [
    path("incidents/", IncidentList.as_view(), name="incidents"),
    path("incidents/<uuid:report_id>/", IncidentDetail.as_view(), name="incident"),
    path("incidents/<uuid:report_id>/amend/", IncidentAmend.as_view(), name="incident-amend"),
]
