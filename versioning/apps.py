from django.apps import AppConfig, apps
from django.db.models.signals import m2m_changed
from django.utils.translation import gettext_lazy as _

from .fixup import follow_versioned_targets
from .related import version_reverse_managers
from .transactions import check_links_owner


class VersioningConfig(AppConfig):
    name = "versioning"
    verbose_name = _("Versioning")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        m2m_changed.connect(check_links_owner, dispatch_uid="versioning.links_owner")
        for model in apps.get_models():
            follow_versioned_targets(model)
            version_reverse_managers(model)
