from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from contactcenter.health import healthz, readyz
from contactcenter.metrics_view import MetricsView
from contactcenter.tickets import WebSocketTicketView
from quality import views as quality_views
from routing import views as routing_views

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", MetricsView.as_view(), name="metrics"),  # Prometheus; docs/OPERATIONS.md
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),  # sign in / out for the pages below
    path("desk/", routing_views.desk, name="desk"),
    path("wallboard/", routing_views.wallboard, name="wallboard"),
    path("quality/", quality_views.dashboard, name="quality-dashboard"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/v1/ws-tickets/", WebSocketTicketView.as_view(), name="ws-ticket"),  # opens one socket: README
    path("api/v1/", include("customers.api.urls")),
    path("api/v1/", include("events.api.urls")),
    path("api/v1/", include("interactions.api.urls")),
    path("api/v1/", include("routing.api.urls")),
    path("api/v1/", include("quality.api.urls")),
    path("api/v1/", include("followups.api.urls")),
    path("api/v1/", include("incidents.api.urls")),
    path("api/v1/", include("authority.api.urls")),
    path("api/v1/", include("intelligence.api.urls")),
    path("api/v1/", include("frameworks.api.urls")),
]

handler500 = "contactcenter.degrade.server_error"  # database down: 503, never a bare 500
handler404 = "contactcenter.api.not_found"  # a URL no route matches: JSON under /api/, like every other refusal
