from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/")),
    path("admin/", admin.site.urls),
    # Pages outside the admin that edit products through VersionedModelForm.
    path("products/", include("demo_project.catalog.urls")),
]
