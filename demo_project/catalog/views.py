"""Pages outside the admin: the product list and an edit page routed by identity."""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.translation import gettext as _

from versioning.exceptions import StaleVersionError
from versioning.forms import versionedmodelform_factory

from .models import Product

ProductForm = versionedmodelform_factory(
    Product, fields=["name", "price", "description"]
)

can_change_products = permission_required(
    "catalog.change_product", login_url=reverse_lazy("admin:login")
)


@can_change_products
def product_list(request):
    products = Product.objects.select_related("changed_by")
    return render(request, "catalog/product_list.html", {"products": products})


@can_change_products
def product_edit(request, identity):
    if request.method == "POST":
        # The latest row, even of a deleted product: a form posted after a
        # delete is then refused with "was deleted", the input kept.
        rows = Product.all_versions.filter(identity=identity).order_by("-version")
    else:
        rows = Product.objects.filter(identity=identity)
    product = rows.select_related("changed_by").first()
    if product is None:
        raise Http404(_("No product with that identity."))
    shown = {
        "product": product,
        "name": str(product),  # the form's input replaces product.name on POST
        "is_current": product.is_current,
    }
    form = ProductForm(
        request.POST if request.method == "POST" else None, instance=product
    )
    if form.is_valid():
        version_before = product.version
        try:
            product = form.save()
        except StaleVersionError:
            pass  # the form now says who changed the product and when
        else:
            if product.version != version_before:
                messages.success(
                    request,
                    _("Saved as version %(version)s.") % {"version": product.version},
                )
            else:
                messages.info(
                    request, _("No field changed, so no new version was made.")
                )
            return redirect("catalog:product_edit", identity=product.identity)
    return render(request, "catalog/product_form.html", {"form": form, **shown})
