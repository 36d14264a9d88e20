from django.urls import path

from quality.api.views import KpiReportView, SurveyAnswerView, SurveyView, SurveyWebhookView

urlpatterns = [
    path("reports/kpis/", KpiReportView.as_view(), name="report-kpis"),
    path("surveys/<uuid:survey_id>/", SurveyView.as_view(), name="survey"),
    path("surveys/<uuid:survey_id>/answer/", SurveyAnswerView.as_view(), name="survey-answer"),
    path("surveys/webhook/<str:provider>/", SurveyWebhookView.as_view(), name="survey-webhook"),
]
