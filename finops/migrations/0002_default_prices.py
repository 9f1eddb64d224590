"""Loaded the shipped default price table (superseded).

The default table is loaded by 0005_default_prices_with_rates, after the price rows
gained their rates: this migration ran the code of the day, which no longer fits the
historical model here. It stays, as a no-op, for the installs that already ran it.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("finops", "0001_initial")]

    operations = []
