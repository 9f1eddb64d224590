from django.db import migrations


def fillfactor(apps, schema_editor):
    # As billing_usagerollup (0003): each run adds to rows already there; room on every
    # page lets PostgreSQL update them in place (HOT), without new index entries.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE billing_featurerollup SET (fillfactor = 70)")


def default(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE billing_featurerollup RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [("billing", "0009_unlogged_daily_keys")]

    operations = [migrations.RunPython(fillfactor, default)]
