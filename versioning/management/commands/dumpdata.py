"""
Django's dumpdata, made exact for versioned models. The app ships it the way
django.contrib.staticfiles ships its own runserver: an installed app's
command of the same name takes the place of Django's, and this one only adds
to it. See versioning.serializers for what a fixture of versioned rows gets.
"""

from typing import Any

from django.core.management import CommandError
from django.core.management.commands import dumpdata

from versioning.serializers import DumpSelection, fixture_serializers


class Command(dumpdata.Command):
    help = (
        f"{dumpdata.Command.help} Versioned models (versioning): datetimes are "
        "written to the microsecond, links as stored, and a dump also carries "
        "the historical versions its rows point at (a pinned key, a link to a "
        "deleted object), so that loaddata accepts it. With --all every version "
        "is written and a reload reproduces history exactly. Examples: "
        "manage.py dumpdata --all catalog -o history.json ; "
        "manage.py dumpdata catalog --format xml"
    )

    def handle(self, *app_labels: str, **options: Any) -> None:
        try:
            selection = DumpSelection.of(app_labels, options["exclude"])
        except CommandError:
            # An unknown label: Django's own handling below says so.
            selection = DumpSelection.of([], [])
        with fixture_serializers(options["format"], selection):
            super().handle(*app_labels, **options)
