from django.apps import AppConfig, apps
from django.db.models.signals import m2m_changed
from django.utils.translation import gettext_lazy as _

from .fixup import check_followed_keys_of
from .joins import scope_joins
from .related import version_related_descriptors
from .transactions import check_links_owner


class VersioningConfig(AppConfig):
    name = "versioning"
    verbose_name = _("Versioning")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        m2m_changed.connect(check_links_owner, dispatch_uid="versioning.links_owner")
        scope_joins(apps.get_models(include_auto_created=True))
        for model in apps.get_models():
            check_followed_keys_of(model)
            version_related_descriptors(model)
