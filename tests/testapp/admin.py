from django.contrib import admin

from versioning.admin import PinnedForeignKeyMixin, VersionedAdmin

from . import models


@admin.register(models.Item)
class ItemAdmin(VersionedAdmin):
    list_display = ("name", "price", "version")
    list_filter = ("price",)


@admin.register(models.Example, models.Document)
class PlainVersionedAdmin(VersionedAdmin):
    pass


@admin.register(models.OrderLine)
class OrderLineAdmin(PinnedForeignKeyMixin, admin.ModelAdmin):
    pass


@admin.register(models.City, models.Club, models.Mascot)
class DeletionScenarioAdmin(VersionedAdmin):
    pass
