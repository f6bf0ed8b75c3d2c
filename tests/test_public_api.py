"""What a user imports: public names, the version, managers they can extend."""

import asyncio
import datetime
import importlib
import threading
from importlib.metadata import version

import pytest
from asgiref.sync import iscoroutinefunction, sync_to_async
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

import versioning
from tests.factories import ExampleFactory, UserFactory
from tests.testapp.models import Example, Page
from versioning.exceptions import HistoricalVersionError, VersioningError
from versioning.middleware import VersioningMiddleware

PUBLIC_MODULES = [
    "versioning",
    "versioning.forms",
    "versioning.models",
    "versioning.managers",
    "versioning.fields",
    "versioning.exceptions",
    "versioning.signals",
    "versioning.context",
    "versioning.middleware",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_each_public_module_declares_what_it_offers(name):
    module = importlib.import_module(name)
    assert module.__all__
    for public in module.__all__:
        assert hasattr(module, public), f"{name}.{public}"


def test_the_version_is_the_installed_distributions():
    assert versioning.__version__ == version("django-versioned-rows")


@pytest.mark.django_db
def test_a_custom_queryset_keeps_its_methods_through_every_manager_and_as_of():
    page = Page.objects.create(title="draft")
    before = timezone.now()
    page.published = True
    page.save()
    assert list(Page.objects.published()) == [page]
    assert list(Page.objects.filter(title="draft").published()) == [page]
    assert list(Page.objects.as_of(before).published()) == []
    past = Page.objects.as_of(before).filter(published=False).get()
    assert past.version == 1
    assert Page.all_versions.published().count() == 1
    assert Page.all_versions.as_of(before + datetime.timedelta(days=1)).count() == 1
    # History stays read-only through the user's class too.
    with pytest.raises(HistoricalVersionError):
        Page.objects.as_of(before).published().update(title="x")
    with pytest.raises(HistoricalVersionError):
        Page.all_versions.published().delete()
    with pytest.raises(VersioningError, match="on the manager"):
        Page.objects.published().as_of(before)
    # And the current rows' writes still make versions.
    assert Page.objects.published().update(title="live") == 1
    assert Page.objects.get().version == 3


@pytest.mark.django_db(transaction=True)
def test_the_middleware_records_the_user_in_async_views():
    user = UserFactory()
    request = RequestFactory().get("/")
    request.user = user

    def write():
        try:
            ExampleFactory(data="async")
        finally:
            connection.close()  # this worker thread's own connection

    async def view(request):
        await sync_to_async(write)()
        return HttpResponse()

    middleware = VersioningMiddleware(view)
    assert iscoroutinefunction(middleware)
    # A loop of its own, in a thread of its own: the browser tests may leave
    # one running in this thread.
    worker = threading.Thread(target=asyncio.run, args=(middleware(request),))
    worker.start()
    worker.join()
    assert Example.objects.get(data="async").changed_by == user


@pytest.mark.django_db
def test_the_middleware_stays_sync_for_sync_views():
    user = UserFactory()
    request = RequestFactory().get("/")
    request.user = user
    middleware = VersioningMiddleware(lambda r: ExampleFactory() and HttpResponse())
    assert not iscoroutinefunction(middleware)
    middleware(request)
    assert Example.objects.get().changed_by == user
