"""Rollups by provider, region, rate class (service tier, long-context threshold,
off-peak) and the reported tag (`FINOPS_REPORT_TAG_KEY`), on both tables and in their
unique groups.

The rows already there keep their sums and take the defaults: provider, region and tag
'', service tier standard, no long-context threshold, peak hours. Their groups cannot be
split without the events, so until the ledger is folded again, usage folded before this
migration reads as one slice per group (the report answers null for its region, provider
and tag), and its batch, long-context or off-peak calls as standard ones. Folding again
splits it exactly: `billing.rollups.rollups_rebuild()` empties both rollups and the day
keys and folds the whole ledger in one transaction (readers see the old rows until it
commits), e.g.

    python manage.py shell -c "from billing.rollups import rollups_rebuild; rollups_rebuild()"

The same re-fold applies the tag key to the history after `FINOPS_REPORT_TAG_KEY` changes.
Adding the columns rewrites neither table (a constant default); each unique index is built
again. Works alike on SQLite and PostgreSQL.
"""

from django.db import migrations, models

TAG_HELP = "The value of the event tag FINOPS_REPORT_TAG_KEY names when folded ('': none)."
ABOVE_HELP = "The long-context threshold whose rates priced the calls (0: base)."


def slices(model_name):
    return [
        migrations.AddField(
            model_name=model_name,
            name="provider",
            field=models.CharField(blank=True, max_length=100),
        ),
        migrations.AddField(
            model_name=model_name,
            name="region",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.AddField(
            model_name=model_name,
            name="service_tier",
            field=models.CharField(default="standard", max_length=16),
        ),
        migrations.AddField(
            model_name=model_name,
            name="above_tokens",
            field=models.BigIntegerField(default=0, help_text=ABOVE_HELP),
        ),
        migrations.AddField(
            model_name=model_name,
            name="off_peak",
            field=models.BooleanField(default=False, help_text="Priced at off-peak rates."),
        ),
        migrations.AddField(
            model_name=model_name,
            name="tag",
            field=models.CharField(blank=True, help_text=TAG_HELP, max_length=200),
        ),
    ]


SLICES = ("provider", "region", "service_tier", "above_tokens", "off_peak", "tag")


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0016_limit_scope"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="usagerollup",
            name="usage_rollup_unique_group",
        ),
        migrations.RemoveConstraint(
            model_name="featurerollup",
            name="feature_rollup_unique_group",
        ),
        *slices("usagerollup"),
        *slices("featurerollup"),
        migrations.AddConstraint(
            model_name="usagerollup",
            constraint=models.UniqueConstraint(
                fields=("grain", "tenant", "period_start", "feature", "model",
                        "prompt_template", "routing_tier", *SLICES),
                name="usage_rollup_unique_group",
            ),
        ),
        migrations.AddConstraint(
            model_name="featurerollup",
            constraint=models.UniqueConstraint(
                fields=("grain", "period_start", "feature", "model", "routing_tier",
                        "tenant_tier", *SLICES),
                name="feature_rollup_unique_group",
            ),
        ),
    ]
