from django.db import migrations


def fillfactor(apps, schema_editor):
    # Each run adds to the same recent rows; free room on every page lets PostgreSQL
    # update them in place (HOT) instead of growing the table and its indexes.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE billing_usagerollup SET (fillfactor = 70)")


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_budgets_alerts")]

    operations = [migrations.RunPython(fillfactor, migrations.RunPython.noop)]
