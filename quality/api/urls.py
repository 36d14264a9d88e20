from django.urls import path

from quality.api.views import KpiReportView

urlpatterns = [path("reports/kpis/", KpiReportView.as_view(), name="report-kpis")]
