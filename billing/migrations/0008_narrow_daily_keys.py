from django.db import migrations, models


def refold(apps, schema_editor):
    # The keys are hashed differently now: drop the aggregates and rewind the watermark,
    # so that the next rollup run folds the whole ledger again.
    apps.get_model("billing", "UsageRollup").objects.all().delete()
    apps.get_model("billing", "FeatureRollup").objects.all().delete()
    apps.get_model("billing", "RollupWatermark").objects.update(
        events_position=0, changes_position=0
    )


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
        migrations.RunPython(refold, migrations.RunPython.noop),
    ]
