from django.db import migrations, models


class Migration(migrations.Migration):
    """Request counts belong to the tenant: the table recognition created becomes organizations'."""

    dependencies = [
        ("organizations", "0002_false_match_rate"),
        ("recognition", "0001_daily_request_count"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="DailyRequestCount",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False,
                                                   verbose_name="ID")),
                        ("day", models.DateField()),
                        ("count", models.PositiveBigIntegerField(default=0)),
                        ("organization", models.ForeignKey(on_delete=models.deletion.CASCADE, related_name="+",
                                                           to="organizations.organization")),
                    ],
                    options={
                        "ordering": ["-day"],
                        "db_table": "recognition_dailyrequestcount",
                        "constraints": [models.UniqueConstraint(fields=("organization", "day"),
                                                                name="unique_request_count_per_day")],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.AlterModelTable(name="dailyrequestcount", table=None),
    ]
