from __future__ import annotations

from django.contrib.auth.views import LogoutView
from django.urls import path

from . import views

app_name = "portal"

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(next_page="/portal/login/"), name="logout"),
    path("statements/<int:statement_id>/pdf", views.statement_pdf_view, name="statement-pdf"),
    path("statements/<int:statement_id>/csv", views.statement_csv_view, name="statement-csv"),
]
