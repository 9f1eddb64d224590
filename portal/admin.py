from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.http import HttpRequest

from .models import TenantUser
from .services import tenant_user_create


class TenantUserCreationForm(forms.ModelForm):
    username = forms.CharField(max_length=150)
    email = forms.EmailField(required=False)
    password = forms.CharField(widget=forms.PasswordInput, help_text="Give it to the tenant user.")

    class Meta:
        model = TenantUser
        fields = ("tenant",)

    def clean_username(self) -> str:
        username = self.cleaned_data["username"]
        if get_user_model().objects.filter(username=username).exists():
            raise forms.ValidationError("A user with this username exists.")
        return username

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        validate_password(password)
        return password


@admin.register(TenantUser)
class TenantUserAdmin(admin.ModelAdmin):
    """Tenant portal logins: each sees its own tenant's usage and statements only."""

    list_display = ("user", "tenant", "created_at")
    list_filter = ("tenant",)
    search_fields = ("user__username", "tenant__slug")

    def get_form(self, request: HttpRequest, obj: Any = None, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = TenantUserCreationForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> tuple:
        return ("user", "tenant") if obj else ()

    def save_model(self, request: HttpRequest, obj: TenantUser, form: Any, change: bool) -> None:
        if change:
            return
        created = tenant_user_create(
            tenant=form.cleaned_data["tenant"],
            username=form.cleaned_data["username"],
            password=form.cleaned_data["password"],
            email=form.cleaned_data.get("email", ""),
        )
        obj.pk, obj.user_id = created.pk, created.user_id
