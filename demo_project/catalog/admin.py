from django.contrib import admin

from . import models


class VersionInfo:
    readonly_fields = (
        "identity",
        "version",
        "valid_from",
        "changed_by",
        "change_reason",
    )


@admin.register(models.Product)
class ProductAdmin(VersionInfo, admin.ModelAdmin):
    list_display = ("name", "price", "version", "valid_from", "changed_by")
    filter_horizontal = ("tags",)


@admin.register(models.Example, models.Child)
class SimpleAdmin(VersionInfo, admin.ModelAdmin):
    list_display = ("data", "version", "valid_from", "changed_by")


class OrderLineInline(admin.TabularInline):
    model = models.OrderLine
    extra = 0


@admin.register(models.Order)
class OrderAdmin(admin.ModelAdmin):
    inlines = [OrderLineInline]


admin.site.register([models.Parent, models.Tag, models.Favourite])
