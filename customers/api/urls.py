from django.urls import path
from rest_framework.routers import SimpleRouter

from customers.api.export import CustomerExportView
from customers.api.views import CustomerViewSet

router = SimpleRouter()
router.register("customers", CustomerViewSet, basename="customer")
urlpatterns = router.urls
urlpatterns.append(path("customers/<uuid:customer_id>/export/", CustomerExportView.as_view(), name="customer-export"))
