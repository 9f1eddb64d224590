from django.db import migrations, models

# The rollups' first-of-day keys of a run, on PostgreSQL: a plain table rather than a
# temporary one, so that the fold's big statements can read it with parallel workers;
# unlogged, as it holds nothing between runs (each run empties it in its transaction).
FIRSTS_TABLE = """
CREATE UNLOGGED TABLE billing_rollupfirsts (
    day date NOT NULL, key bigint NOT NULL, session boolean NOT NULL, id bigint NOT NULL
)
"""


def refold(apps, schema_editor):
    # The keys are hashed differently now: drop the aggregates and rewind the watermark,
    # so that the next rollup run folds the whole ledger again.
    apps.get_model("billing", "UsageRollup").objects.all().delete()
    apps.get_model("billing", "FeatureRollup").objects.all().delete()
    apps.get_model("billing", "RollupWatermark").objects.update(
        events_position=0, changes_position=0
    )
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FIRSTS_TABLE)


def drop_firsts(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP TABLE IF EXISTS billing_rollupfirsts")


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0007_feature_rollups"),
    ]

    operations = [
        migrations.DeleteModel(name="DailyKey"),
        migrations.CreateModel(
            name="DailyKey",
            fields=[
                ("pk", models.CompositePrimaryKey("day", "key", blank=True, editable=False, primary_key=True, serialize=False)),
                ("day", models.DateField()),
                ("key", models.BigIntegerField()),
            ],
        ),
        migrations.RunPython(refold, drop_firsts),
    ]
