from typing import Any

from django.apps import AppConfig, apps
from django.apps.registry import Apps
from django.db.models.fields.related import lazy_related_operation
from django.db.models.signals import class_prepared, m2m_changed, pre_save
from django.utils.translation import gettext_lazy as _

from .fixup import check_followed_keys_of
from .joins import scope_joins
from .links import remember_raw_save
from .related import version_related_descriptors
from .transactions import check_links_owner


class VersioningConfig(AppConfig):
    name = "versioning"
    verbose_name = _("Versioning")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        m2m_changed.connect(check_links_owner, dispatch_uid="versioning.links_owner")
        pre_save.connect(remember_raw_save, dispatch_uid="versioning.raw_links")
        wire_relations(apps)
        class_prepared.connect(wire_model_defined_later, dispatch_uid="versioning.wire")


def wire_relations(registry: Apps) -> None:
    """
    Give every relation that touches a versioned model its scoped joins and
    its time-travelling descriptors. Safe to run again: nothing is wired twice.
    """
    every_model = registry.get_models(include_auto_created=True)
    scope_joins(every_model)
    for model in every_model:
        check_followed_keys_of(model)
        version_related_descriptors(model)


def wire_model_defined_later(sender: Any, **kwargs: Any) -> None:
    """A model defined after start-up (a test's isolated app) is wired too."""
    registry = sender._meta.apps
    if not registry.ready:
        return  # ready() wires every model defined at start-up
    related = [
        field.remote_field.model
        for field in [*sender._meta.local_fields, *sender._meta.local_many_to_many]
        if field.is_relation and field.remote_field is not None
    ]
    lazy_related_operation(lambda *_: wire_relations(registry), sender, *related)
