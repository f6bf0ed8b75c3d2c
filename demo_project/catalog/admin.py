from django.contrib import admin

from versioning.admin import PinnedForeignKeyMixin, VersionedAdmin

from . import models


@admin.register(models.Product)
class ProductAdmin(VersionedAdmin):
    list_display = ("name", "price", "version", "valid_from", "changed_by")
    search_fields = ("name",)
    filter_horizontal = ("tags",)


@admin.register(models.Example, models.Child)
class SimpleAdmin(VersionedAdmin):
    list_display = ("data", "version", "valid_from", "changed_by")


class OrderLineInline(PinnedForeignKeyMixin, admin.TabularInline):
    model = models.OrderLine
    extra = 0


@admin.register(models.Order)
class OrderAdmin(admin.ModelAdmin):
    inlines = [OrderLineInline]


admin.site.register([models.Parent, models.Tag, models.Favourite])
