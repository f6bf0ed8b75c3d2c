from django.urls import path

from . import views

app_name = "catalog"
urlpatterns = [
    path("", views.product_list, name="product_list"),
    path("<uuid:identity>/edit/", views.product_edit, name="product_edit"),
]
