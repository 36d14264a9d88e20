from django.urls import path

from quality.api.views import (
                               CalibrationView,
                               EvaluationAcknowledge,
                               EvaluationDetailView,
                               EvaluationDispute,
                               EvaluationList,
                               EvaluationResolve,
                               KpiDrilldownView,
                               KpiReportView,
                               ReviewQueueView,
                               ScorecardList,
                               SurveyAnswerView,
                               SurveyView,
                               SurveyWebhookView,
)

urlpatterns = [
    path("reports/kpis/", KpiReportView.as_view(), name="report-kpis"),
    path("reports/kpis/drilldown/", KpiDrilldownView.as_view(), name="report-kpis-drilldown"),
    path("surveys/<uuid:survey_id>/", SurveyView.as_view(), name="survey"),
    path("surveys/<uuid:survey_id>/answer/", SurveyAnswerView.as_view(), name="survey-answer"),
    path("surveys/webhook/<str:provider>/", SurveyWebhookView.as_view(), name="survey-webhook"),
    path("scorecards/", ScorecardList.as_view(), name="scorecards"),
    path("evaluations/", EvaluationList.as_view(), name="evaluations"),
    path("evaluations/queue/", ReviewQueueView.as_view(), name="evaluation-queue"),
    path("evaluations/calibration/", CalibrationView.as_view(), name="evaluation-calibration"),
    path("evaluations/<uuid:evaluation_id>/", EvaluationDetailView.as_view(), name="evaluation"),
    path("evaluations/<uuid:evaluation_id>/acknowledge/", EvaluationAcknowledge.as_view(),
         name="evaluation-acknowledge"),
    path("evaluations/<uuid:evaluation_id>/dispute/", EvaluationDispute.as_view(), name="evaluation-dispute"),
    path("evaluations/<uuid:evaluation_id>/resolve/", EvaluationResolve.as_view(), name="evaluation-resolve"),
]
