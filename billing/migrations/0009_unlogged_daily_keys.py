import datetime

from django.db import migrations

# billing.rollups.KEYS_WHOLE: the day of the row that says the keys are all there.
KEYS_WHOLE = datetime.date(9999, 12, 31)


def unlogged(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("ALTER TABLE billing_dailykey SET UNLOGGED")
    # Whole as it is: the next run need not record the keys again. (Before a first fold
    # there is nothing to say, and the marker would only be one more row to look up.)
    folded = apps.get_model("billing", "RollupWatermark").objects.filter(events_position__gt=0)
    if folded.exists():
        schema_editor.execute(
            "INSERT INTO billing_dailykey (day, key) VALUES (%s, 0) ON CONFLICT DO NOTHING",
            [KEYS_WHOLE],
        )


def logged(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DELETE FROM billing_dailykey WHERE day = %s", [KEYS_WHOLE])
    schema_editor.execute("ALTER TABLE billing_dailykey SET LOGGED")


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0008_narrow_daily_keys"),
    ]

    operations = [migrations.RunPython(unlogged, logged)]
